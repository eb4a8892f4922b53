#include "textflag.h"

// func relay(): called by the kernel as a signal handler, R0 the signal,
// LR the restorer. It writes numbers[R0] to pipeFD (write(2); the pipe
// does not block) and returns to the restorer, whose rt_sigreturn
// restores every register.
TEXT ·relay(SB), NOSPLIT|NOFRAME, $0
	CMP	$64, R0
	BHI	done
	MOVD	$·numbers(SB), R1
	ADD	R0, R1, R1
	MOVW	·pipeFD(SB), R0
	MOVD	$1, R2
	MOVD	$64, R8 // SYS_write
	SVC
done:
	RET

// func relayAddr() uintptr
TEXT ·relayAddr(SB), NOSPLIT, $0-8
	MOVD	$·relay(SB), R0
	MOVD	R0, ret+0(FP)
	RET
