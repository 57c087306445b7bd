#include "textflag.h"

// The relay's signal handler (see signals.go), installed with SA_SIGINFO on
// the thread's alternate signal stack. The kernel calls it with the C ABI:
// DI = signal number, SI = *siginfo, DX = *ucontext. It touches no Go state
// but the relay* variables, with atomic instructions, and makes raw system
// calls; the kernel restores every register on rt_sigreturn.
//
// siginfo on amd64: si_signo at 0, si_errno at 4, si_code at 8; for a signal
// a process sent (si_code <= 0), the sender's pid at 16.

#define SYS_kill 62
#define SYS_getppid 110
#define SYS_rt_sigreturn 15
#define SYS_pidfd_send_signal 424

TEXT ·relayHandler(SB),NOSPLIT|NOFRAME,$0
	MOVL	8(SI), AX
	CMPL	AX, $0
	JGT	fromkernel
	MOVL	16(SI), AX
	CMPL	AX, ·relaySelf(SB)
	JEQ	done			// our own, e.g. a write of ours to a closed pipe
	CMPL	AX, ·relayPid(SB)
	JEQ	toparent		// the target signals its parent
	JMP	hold

fromkernel:
	// The kernel sent it: the terminal, to our whole foreground process
	// group, which the target shares and so got its own copy; or a
	// limit of ours. Held only while there is no target yet.
	CMPL	·relayPidfd(SB), $0
	JGE	done

hold:
	LEAL	-1(DI), CX
	// Note the sender (0: the kernel) before marking the signal held.
	XORL	R11, R11
	CMPL	8(SI), $0
	JGT	noted
	MOVL	16(SI), R11
noted:
	LEAQ	·relaySender(SB), R10
	MOVL	R11, (R10)(CX*4)
	MOVQ	$1, AX
	SHLQ	CX, AX
	LOCK
	ORQ	AX, ·relayPending(SB)
	MOVL	·relayPidfd(SB), R8
	CMPL	R8, $0
	JLT	done			// delivered once the target starts
	XORL	R9, R9
	XCHGQ	R9, ·relayPending(SB)

deliver:
	TESTQ	R9, R9
	JEQ	done
	BSFQ	R9, R12
	BTRQ	R12, R9
	// Sent by the target before the relay knew its pid: to our parent.
	LEAQ	·relaySender(SB), R11
	MOVL	(R11)(R12*4), R11
	CMPL	R11, ·relayPid(SB)
	JEQ	heldforparent
	MOVL	R8, DI
	LEAQ	1(R12), SI
	XORL	DX, DX
	XORL	R10, R10
	MOVL	$SYS_pidfd_send_signal, AX
	SYSCALL
	JMP	deliver

heldforparent:
	MOVL	$SYS_getppid, AX
	SYSCALL
	CMPL	AX, $1
	JLE	deliver			// never to init
	MOVL	AX, DI
	LEAQ	1(R12), SI
	MOVL	$SYS_kill, AX
	SYSCALL
	JMP	deliver

toparent:
	MOVL	DI, R12
	MOVL	$SYS_getppid, AX
	SYSCALL
	CMPL	AX, $1
	JLE	done			// never to init
	MOVL	AX, DI
	MOVL	R12, SI
	MOVL	$SYS_kill, AX
	SYSCALL

done:
	RET

TEXT ·relayRestorer(SB),NOSPLIT|NOFRAME,$0
	MOVL	$SYS_rt_sigreturn, AX
	SYSCALL
	INT	$3

// func relayAddrs() (handler, restorer uintptr)
TEXT ·relayAddrs(SB),NOSPLIT,$0-16
	LEAQ	·relayHandler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·relayRestorer(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
