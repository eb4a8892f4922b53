#include "textflag.h"

// func gate(): called by the kernel as a signal handler, R0 the signal,
// R1 its siginfo, R2 the context, LR the restorer, all of which a jump
// keeps for the runtime's own handler.
TEXT ·gate(SB), NOSPLIT|NOFRAME, $0
	MOVW	8(R1), R9 // si_code
	CMPW	$0, R9
	BLE	dropped
	MOVD	·next(SB), R9
	JMP	(R9)
dropped:
	RET

// func drop(): a signal handler that returns (to the restorer in LR,
// which calls rt_sigreturn).
TEXT ·drop(SB), NOSPLIT|NOFRAME, $0
	RET

// func gateAddr() uintptr
TEXT ·gateAddr(SB), NOSPLIT, $0-8
	MOVD	$·gate(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// func dropAddr() uintptr
TEXT ·dropAddr(SB), NOSPLIT, $0-8
	MOVD	$·drop(SB), R0
	MOVD	R0, ret+0(FP)
	RET
