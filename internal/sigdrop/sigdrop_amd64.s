#include "textflag.h"

// func gate(): called by the kernel as a signal handler, DI the signal,
// SI its siginfo, DX the context, the stack as the runtime's own handler
// expects it, which a jump keeps.
TEXT ·gate(SB), NOSPLIT|NOFRAME, $0
	MOVL	8(SI), AX // si_code
	CMPL	AX, $0
	JLE	dropped
	MOVQ	·next(SB), AX
	JMP	AX
dropped:
	RET

// func drop(): a signal handler that returns (to the restorer, which
// calls rt_sigreturn).
TEXT ·drop(SB), NOSPLIT|NOFRAME, $0
	RET

// func gateAddr() uintptr
TEXT ·gateAddr(SB), NOSPLIT, $0-8
	LEAQ	·gate(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func dropAddr() uintptr
TEXT ·dropAddr(SB), NOSPLIT, $0-8
	LEAQ	·drop(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
