/* sanitizer.h - telling ThreadSanitizer and AddressSanitizer about task
 * switches. Both track the stack a thread runs on; a switch they do not
 * know about looks to TSan like one thread racing with itself, and to ASan
 * like a jump into unrelated memory. Their fiber interfaces say what
 * happened. Without the sanitizers, every function here is empty. */
#ifndef OX_TASK_SANITIZER_H
#define OX_TASK_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_THREAD__)
#define OX__TASK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OX__TASK_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OX__TASK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OX__TASK_ASAN 1
#endif
#endif

#ifdef OX__TASK_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
static inline void *ox__san_fiber_current(void)
{
    return __tsan_get_current_fiber();
}
static inline void *ox__san_fiber_create(void)
{
    return __tsan_create_fiber(0);
}
static inline void ox__san_fiber_destroy(void *f)
{
    __tsan_destroy_fiber(f);
}
static inline void ox__san_fiber_switch(void *f)
{
    __tsan_switch_to_fiber(f, 0);
}
#else
static inline void *ox__san_fiber_current(void)
{
    return NULL;
}
static inline void *ox__san_fiber_create(void)
{
    return NULL;
}
static inline void ox__san_fiber_destroy(void *f)
{
    (void)f;
}
static inline void ox__san_fiber_switch(void *f)
{
    (void)f;
}
#endif

#ifdef OX__TASK_ASAN
void __asan_poison_memory_region(const volatile void *addr, size_t size);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
/* Memory oxide keeps for reuse rather than free (task records): an access
 * to it while kept is reported as a use after free would be. */
static inline void ox__san_kept(void *p, size_t size)
{
    __asan_poison_memory_region(p, size);
}
static inline void ox__san_reused(void *p, size_t size)
{
    __asan_unpoison_memory_region(p, size);
}
/* A recycled stack: the frames its last task left behind (it never
 * returned through them) keep their redzones poisoned until told. */
static inline void ox__san_stack_reuse(void *lo, size_t size)
{
    __asan_unpoison_memory_region(lo, size);
}
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
/* Before a switch to the stack [bottom, bottom+size). save: where this
 * context's fake stack is kept; NULL when this context ends for good. */
static inline void ox__san_stack_leave(void **save, const void *bottom, size_t size)
{
    __sanitizer_start_switch_fiber(save, bottom, size);
}
/* First thing after a switch lands; reports the stack we came from. */
static inline void ox__san_stack_arrive(void *save, const void **from_bottom, size_t *from_size)
{
    __sanitizer_finish_switch_fiber(save, from_bottom, from_size);
}
#else
static inline void ox__san_kept(void *p, size_t size)
{
    (void)p, (void)size;
}
static inline void ox__san_reused(void *p, size_t size)
{
    (void)p, (void)size;
}
static inline void ox__san_stack_reuse(void *lo, size_t size)
{
    (void)lo, (void)size;
}
static inline void ox__san_stack_leave(void **save, const void *bottom, size_t size)
{
    (void)save, (void)bottom, (void)size;
}
static inline void ox__san_stack_arrive(void *save, const void **from_bottom, size_t *from_size)
{
    (void)save, (void)from_bottom, (void)from_size;
}
#endif

#endif
