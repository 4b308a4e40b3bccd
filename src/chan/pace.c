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
 * how fast the backlog grows. While the senders keep adding messages, it
 * lets them get `batch` ahead and then reads lines they have finished with.
 * A backlog that grew by less than two messages over one look (a hand-off,
 * or no sender at work) ends the wait at once, so a hand-off pays for one
 * 50 ns look at most. The usual spin-then-park path follows either way.
 *
 * The looks are spaced out (50 ns, then doubling up to 1 us): each one
 * reads the senders' tail line, which the sender must then fetch back. With
 * a look every 100 ns, nearly every wait measured ended for lack of growth:
 * the looks themselves had slowed the sender down.
 *
 * Nothing here claims or registers anything: it only delays the receive,
 * which then checks the channel with its own ordered loads.
 */
#include "chan_internal.h"

#define FIRST_LOOK_NS 50
#define MAX_GAP_NS    1000
#define MAX_LOOKS     12 /* about 10 us in all */

void ox__chan_wait_for_batch(const ox__chan *c, size_t batch, size_t (*backlog)(const ox__chan *c),
                             ox_instant deadline)
{
    size_t last = backlog(c);
    int64_t due = ox_instant_now().ns, gap = FIRST_LOOK_NS;
    for (int look = 0; look < MAX_LOOKS; look++) {
        due += gap;
        gap = gap * 2 < MAX_GAP_NS ? gap * 2 : MAX_GAP_NS;
        ox_instant now;
        do {
            ox__cpu_relax();
            now = ox_instant_now();
        } while (now.ns < due);
        if (now.ns >= deadline.ns)
            return;
        size_t n = backlog(c);
        if (n >= batch || n < last + 2)
            return;
        last = n;
    }
}
