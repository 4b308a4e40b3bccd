/* switch_aarch64.S - ox__ctx_switch for AArch64 (AAPCS64, see context.h).
 *
 * Frame (176 bytes, 16-byte aligned) on the stack being left:
 *   [sp+0..79]    x19-x28
 *   [sp+80..95]   x29 (frame pointer), x30 (return address)
 *   [sp+96..159]  d8-d15 (the callee-saved halves of v8-v15)
 *   [sp+160]      fpcr (rounding mode and friends)
 * A new context (ox__ctx_make) holds the same frame with x30 pointing at
 * ox__ctx_start, entry in x19 and its argument in x20. */
#if defined(__aarch64__)
        .text
        .globl  ox__ctx_switch
        .hidden ox__ctx_switch
        .type   ox__ctx_switch, %function
        .p2align 4
ox__ctx_switch:
        .cfi_startproc
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        add     sp, sp, #176
        ret
        .cfi_endproc
        .size   ox__ctx_switch, .-ox__ctx_switch

/* The first code a new context runs: entry(arg). x30 is marked undefined
 * so that unwinders and debuggers stop at the bottom of a task's stack. */
        .globl  ox__ctx_start
        .hidden ox__ctx_start
        .type   ox__ctx_start, %function
        .p2align 4
ox__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   ox__ctx_start, .-ox__ctx_start
#endif
        .section .note.GNU-stack,"",@progbits
