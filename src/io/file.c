/* file.c - positioned file reads and writes that do not stop a worker:
 * from a task they run on the blocking pool (a disk read cannot be
 * waited for with epoll). */
#define _GNU_SOURCE
#include "io_internal.h"

#include <errno.h>
#include <unistd.h>

typedef struct file_op {
    int fd;
    void *buf;
    size_t len;
    off_t offset;
    bool write;
    ssize_t result;
    int error;
} file_op;

static void *run_op(void *arg)
{
    file_op *op = arg;
    do
        op->result = op->write ? pwrite(op->fd, op->buf, op->len, op->offset)
                               : pread(op->fd, op->buf, op->len, op->offset);
    while (op->result < 0 && errno == EINTR);
    op->error = op->result < 0 ? ox__io_errno() : 0;
    return NULL;
}

static const ox__wait_site file_site = {.what = "file I/O on the blocking pool"};

static int file_io(file_op *op, size_t *n)
{
    *n = 0;
    if (ox_task_current() == NULL) {
        run_op(op);
    } else {
        /* A cancellation point only before the job starts: once it runs,
         * it uses the caller's buffer, so the call waits for it. */
        if (ox__park_cancelled())
            return OX_ECANCELED;
        ox_task_handle job;
        int rc = ox_task_spawn_blocking(run_op, op, &job);
        if (rc != 0)
            return rc;
        (void)ox__task_wait_finished(job.task, &file_site);
        (void)!ox_task_join(&job, NULL, NULL); /* finished: returns at once */
    }
    if (op->error != 0)
        return op->error;
    *n = (size_t)op->result;
    return 0;
}

int ox_file_read_at(int fd, void *buf, size_t len, int64_t offset, size_t *n)
{
    file_op op = {.fd = fd, .buf = buf, .len = len, .offset = (off_t)offset};
    return file_io(&op, n);
}

int ox_file_write_at(int fd, const void *buf, size_t len, int64_t offset, size_t *n)
{
    file_op op = {.fd = fd, .buf = (void *)buf, .len = len, .offset = (off_t)offset, .write = true};
    return file_io(&op, n);
}
