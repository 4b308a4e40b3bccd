/* addr.c - socket addresses as text, and name resolution (getaddrinfo on
 * the blocking pool when called from a task). */
#define _GNU_SOURCE
#include "io_internal.h"

#include "oxide/task.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *text, in_port_t *port)
{
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (*text < '0' || *text > '9' || *end != '\0' || errno != 0 || value > 65535)
        return OX_EINVAL;
    *port = htons((uint16_t)value);
    return 0;
}

int ox_sockaddr_parse(const char *text, ox_sockaddr *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (colon == NULL || (size_t)(colon - text) >= sizeof host)
        return OX_EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    in_port_t port;
    if (parse_port(colon + 1, &port) != 0)
        return OX_EINVAL;
    memset(out, 0, sizeof *out);
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host[len - 1] = '\0';
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->storage;
        if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
            return OX_EINVAL;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = port;
        out->len = sizeof *in6;
        return 0;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)&out->storage;
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
        return OX_EINVAL;
    in->sin_family = AF_INET;
    in->sin_port = port;
    out->len = sizeof *in;
    return 0;
}

int ox_sockaddr_format(const ox_sockaddr *addr, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (addr->storage.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->storage;
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host) == NULL)
            return OX_EINVAL;
        n = snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (addr->storage.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->storage;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host) == NULL)
            return OX_EINVAL;
        n = snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        return OX_EINVAL;
    }
    return n >= 0 && (size_t)n < size ? 0 : ENOSPC;
}

unsigned ox_sockaddr_port(const ox_sockaddr *addr)
{
    if (addr->storage.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&addr->storage)->sin_port);
    if (addr->storage.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&addr->storage)->sin6_port);
    return 0;
}

/* ---- resolution ---- */

/* One lookup, shared by the caller and the blocking-pool job that runs it:
 * a caller that is aborted stops waiting, and the job may still run, so
 * whichever of the two finishes last frees it. */
typedef struct lookup {
    _Atomic int refs;
    struct addrinfo *result;
    int gai_status;
    int gai_errno;
    char *host, *service; /* copies: the caller's strings may be gone */
} lookup;

static void lookup_release(lookup *l)
{
    /* Acq_rel: the last one out sees the other's writes before freeing. */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (l->result != NULL)
        freeaddrinfo(l->result);
    free(l->host);
    free(l->service);
    free(l);
}

static void lookup_run(lookup *l)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    l->gai_status = getaddrinfo(l->host, l->service, &hints, &l->result);
    l->gai_errno = errno;
}

/* On the blocking pool. */
static void *lookup_job(void *arg)
{
    lookup_run(arg);
    lookup_release(arg); /* the job's reference */
    return NULL;
}

static int code_of(const lookup *l)
{
    switch (l->gai_status) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_SERVICE:
        return OX_ENOTFOUND;
    case EAI_AGAIN:
        return EAGAIN;
    case EAI_MEMORY:
        return ENOMEM;
    case EAI_SYSTEM:
        return l->gai_errno;
    default:
        return OX_EINVAL;
    }
}

static char *copy(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int ox_resolve(const char *host, const char *service, ox_sockaddr *out, size_t max, size_t *count)
{
    *count = 0;
    lookup *l = calloc(1, sizeof *l);
    if (l == NULL)
        return ENOMEM;
    l->host = copy(host);
    l->service = copy(service);
    atomic_init(&l->refs, 1); /* ours */
    if ((host != NULL && l->host == NULL) || (service != NULL && l->service == NULL)) {
        lookup_release(l);
        return ENOMEM;
    }
    if (ox_task_current() == NULL) {
        lookup_run(l);
    } else {
        atomic_store_explicit(&l->refs, 2, memory_order_relaxed); /* and the job's */
        ox_task_handle job;
        int rc = ox_task_spawn_blocking(lookup_job, l, &job);
        if (rc != 0) {
            free(l->host);
            free(l->service);
            free(l);
            return rc;
        }
        rc = ox_task_join(&job, NULL, NULL);
        if (rc != 0) { /* aborted while waiting: the job frees l if last */
            ox_task_handle_drop(&job);
            lookup_release(l);
            return rc;
        }
    }
    int rc = code_of(l);
    for (struct addrinfo *a = l->result; rc == 0 && a != NULL && *count < max; a = a->ai_next) {
        if (a->ai_addrlen > sizeof out->storage)
            continue;
        memset(&out[*count], 0, sizeof *out);
        memcpy(&out[*count].storage, a->ai_addr, a->ai_addrlen);
        out[*count].len = a->ai_addrlen;
        ++*count;
    }
    lookup_release(l);
    return rc;
}
