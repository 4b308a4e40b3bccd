/* The I/O examples (13_*), each its own server and client on localhost:
 * their whole output, line by line. */
#include "runner.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

OX_TEST(example_13_echo_server)
{
    static const char *const lines[] = {"echo server listening on localhost",
                                        "client 0: 3 of 3 lines echoed intact",
                                        "client 1: 3 of 3 lines echoed intact",
                                        "client 2: 3 of 3 lines echoed intact",
                                        "server stopped",
                                        NULL};
    ox_test_check_example("13_echo_server", 0, false, lines);
}

OX_TEST(example_13_http_server)
{
    static const char *const lines[] = {
        "connection 0, request 0: HTTP/1.1 200 OK, body \"Hello, World!\"",
        "connection 0, request 1: HTTP/1.1 200 OK, body \"Hello, World!\"",
        "connection 0, request 2: HTTP/1.1 200 OK, body \"Hello, World!\"",
        "connection 1, request 0: HTTP/1.1 200 OK, body \"Hello, World!\"",
        "connection 1, request 1: HTTP/1.1 200 OK, body \"Hello, World!\"",
        "connection 1, request 2: HTTP/1.1 200 OK, body \"Hello, World!\"",
        NULL};
    ox_test_check_example("13_http_server", 0, false, lines);
}

/* The fast requests answer within 30 ms of a 1 s deadline and the slow
 * ones after 3 s or more: the split holds unless the machine stalls for
 * most of a second. */
OX_TEST(example_13_fan_out)
{
    static const char *const lines[] = {"request 0 (server delay 10 ms): answered",
                                        "request 1 (server delay 3000 ms): task aborted",
                                        "request 2 (server delay 20 ms): answered",
                                        "request 3 (server delay 5000 ms): task aborted",
                                        "request 4 (server delay 30 ms): answered",
                                        "request 5 (server delay 4000 ms): task aborted",
                                        NULL};
    ox_test_check_example("13_fan_out", 0, false, lines);
}

/* The two clients that left finish at once; the idle one is still open at
 * the 500 ms deadline. Only a stall of most of that time could move a
 * connection from one count to the other: the test checks the sum. */
OX_TEST(example_13_graceful_shutdown)
{
    char *argv[] = {NULL, NULL};
    char path[512], *out = NULL, *err = NULL;
    snprintf(path, sizeof path, "%s/13_graceful_shutdown", ox_test_examples_dir());
    argv[0] = path;
    int status = ox_test_run_program(argv, 60, &out, &err);
    CHECK_EQ(status, 0);
    CHECK(strstr(out, "server up; stop it with Ctrl-C (this demo sends itself SIGINT)\n"
                      "2 clients served\n"
                      "received SIGINT: no longer accepting\n") == out);
    long finished = -1, aborted = -1;
    const char *line = strstr(out, "connections: ");
    CHECK(line != NULL);
    CHECK_EQ(
        sscanf(line, "connections: %ld finished, %ld aborted at the deadline", &finished, &aborted),
        2);
    CHECK_EQ(finished + aborted, 3);
    CHECK(aborted >= 1); /* the idle one */
    CHECK(strstr(out, "shut down cleanly\n") != NULL);
    free(out);
    free(err);
}
