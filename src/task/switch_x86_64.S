/* switch_x86_64.S - ox__ctx_switch for x86-64 System V (see context.h).
 *
 * Frame pushed on the stack being left, from high to low addresses:
 *   return address, rbp, rbx, r12, r13, r14, r15, [mxcsr, x87 cw]
 * A new context (ox__ctx_make) holds the same frame with the return
 * address pointing at ox__ctx_start, entry in r12 and its argument in r13. */
#if defined(__x86_64__)
        .text
        .globl  ox__ctx_switch
        .hidden ox__ctx_switch
        .type   ox__ctx_switch, @function
        .p2align 4
ox__ctx_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   ox__ctx_switch, .-ox__ctx_switch

/* The first code a new context runs: entry(arg). The stack is 16-byte
 * aligned here, as the call needs. rip is marked undefined so that
 * unwinders and debuggers stop at the bottom of a task's stack. */
        .globl  ox__ctx_start
        .hidden ox__ctx_start
        .type   ox__ctx_start, @function
        .p2align 4
ox__ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   ox__ctx_start, .-ox__ctx_start
#endif
        .section .note.GNU-stack,"",@progbits
