/* backtrace.h - the stack backtrace a panic prints (OX_BACKTRACE). */
#ifndef OX_BACKTRACE_H
#define OX_BACKTRACE_H

#include <stddef.h>

enum ox__backtrace_style {
    OX__BACKTRACE_OFF,   /* OX_BACKTRACE unset or 0 */
    OX__BACKTRACE_SHORT, /* any other value: frames from the panic to main */
    OX__BACKTRACE_FULL,  /* "full": every frame, with its address */
};

/* The style OX_BACKTRACE asks for, read once per process, as Rust reads
 * RUST_BACKTRACE once. */
enum ox__backtrace_style ox__backtrace_style(void);

/* Appends the calling thread's backtrace in Rust's shape to the text
 * *buf (malloc'd, *len bytes long; grown with realloc): "stack backtrace:"
 * and one line per frame, then, in the short style, the note on
 * OX_BACKTRACE=full. On out of memory, what was built so far stays. */
void ox__backtrace_append(char **buf, size_t *len, enum ox__backtrace_style style);

#endif
