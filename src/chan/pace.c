/* pace.c - keeping a blocked receiver from trailing right behind a streaming
 * sender.
 *
 * A receiver that takes each message the moment it appears shares the
 * slots' cache lines with a sender still writing the next ones: each line
 * crosses between the two cores several times, and both sides run at the
 * speed of those transfers (on the 2-vCPU benchmark machine, 3-6x slower
 * than when the receiver trails far behind; Rust std's receiver escapes it
 * only because it parks at once, and pays a futex wake per hand-off for
 * that). So a blocking receiver that finds the channel empty first watches
 * how the backlog grows. If a message came within 50 ns (a sender at work,
 * not one waiting for our reply), it looks again every microsecond, and as
 * long as the senders keep adding messages (two or more per look) it lets
 * them get `batch` ahead, then reads lines they have finished with. A look
 * that sees too little growth ends the wait at once. The usual
 * spin-then-park path follows either way.
 *
 * Why these numbers. A request/response partner cannot answer within
 * 50 ns of our finding the channel empty, so a hand-off pays one 50 ns
 * look; a lone message that happens to arrive inside those 50 ns waits one
 * microsecond more. The later looks are a microsecond apart because each one reads the
 * senders' tail line, which the sender must then fetch back: with a look
 * every 100 ns, and likewise with a second look only 100 ns after the
 * first, a sender still recovering from sharing lines with the receiver
 * added fewer than two messages per look, nearly every wait ended early,
 * and the lockstep went on (30-150 ns/msg in spsc_unbounded, against
 * 15-25 with the microsecond looks, in the hours when this VM's vCPUs
 * were slow to share lines).
 *
 * Nothing here claims or registers anything: it only delays the receive,
 * which then checks the channel with its own ordered loads.
 */
#include "chan_internal.h"

#define FIRST_LOOK_NS 50
#define LOOK_NS       1000
#define MAX_LOOKS     10 /* about 10 us in all */

void ox__chan_wait_for_batch(const ox__chan *c, size_t batch, size_t (*backlog)(const ox__chan *c),
                             ox_instant deadline)
{
    /* In a task the senders may be queued behind us on this worker: waiting
     * here would only delay them. */
    if (ox__park_unit_get() != NULL)
        return;
    size_t last = backlog(c);
    int64_t due = ox_instant_now().ns + FIRST_LOOK_NS;
    for (int look = 0; look < MAX_LOOKS; look++, due += LOOK_NS) {
        ox_instant now;
        do {
            ox__cpu_relax();
            now = ox_instant_now();
        } while (now.ns < due);
        if (now.ns >= deadline.ns)
            return;
        size_t n = backlog(c);
        size_t growth_needed = look == 0 ? 1 : 2;
        if (n >= batch || n < last + growth_needed)
            return;
        last = n;
    }
}
