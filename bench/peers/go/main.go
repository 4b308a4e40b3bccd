// The Go peer of oxide's benchmarks: bench/WORKLOADS.md's lock workloads
// on package sync and its channel workloads on Go channels, with
// goroutines as the threads and GOMAXPROCS left at its default.
//
// Usage: oxide-peers-go [SUBSTRING]   (or BENCH=SUBSTRING); OX_BENCH_ROUNDS
// sets the repetitions (default 3, the median is printed).
// Output: workload<TAB>go<TAB>ns_per_op; skips are reported on stderr.
//
// Flavors: bounded0 = make(chan uint64) (unbuffered), bounded1 =
// make(chan uint64, 1), boundedN = make(chan uint64, N). Go has no
// unbounded channel, so the unbounded workloads are skipped.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const impl = "go"

var (
	filter = ""
	rounds = 3
)

// wants: "=name" selects one workload exactly (bench/run.sh runs each
// workload in a fresh process that way); otherwise a substring.
func wants(workload string) bool {
	if strings.HasPrefix(filter, "=") {
		return workload == filter[1:]
	}
	return strings.Contains(workload, filter)
}

// run times f (one measurement, returning ns per op) `rounds` times and
// prints the median.
func run(workload string, f func() float64) {
	if !wants(workload) {
		return
	}
	samples := make([]float64, rounds)
	for i := range samples {
		samples[i] = f()
	}
	sort.Float64s(samples)
	fmt.Printf("%s\t%s\t%.1f\n", workload, impl, samples[rounds/2])
}

func skip(workload, why string) {
	if wants(workload) {
		fmt.Fprintf(os.Stderr, "# skipped %s %s: %s\n", workload, impl, why)
	}
}

func check(ok bool, workload string) {
	if !ok {
		fmt.Fprintf(os.Stderr, "go peer: %s: wrong result\n", workload)
		os.Exit(1)
	}
}

// timedTeam starts n goroutines running worker(i) before the timer; they
// wait at a gate that is opened right after the clock is read, then
// mainPart runs on the calling goroutine. The timer stops when all have
// finished. Returns elapsed nanoseconds.
func timedTeam(n int, worker func(i int), mainPart func()) int64 {
	gate := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			defer wg.Done()
			<-gate
			worker(i)
		}(i)
	}
	start := time.Now()
	close(gate)
	mainPart()
	wg.Wait()
	return time.Since(start).Nanoseconds()
}

// ---- locks -------------------------------------------------------------------

const (
	uncontendedOps   = 10_000_000
	contendedThreads = 4
	contendedOps     = 1_000_000
	rwThreads        = 4
	rwOps            = 1_000_000
	rwWriteEvery     = 100
	handoffs         = 100_000
)

var sink uint64 // keeps the readers' sums alive

func mutexUncontended() float64 {
	var m sync.Mutex
	var counter uint64
	start := time.Now()
	for i := 0; i < uncontendedOps; i++ {
		m.Lock()
		counter++
		m.Unlock()
	}
	ns := time.Since(start).Nanoseconds()
	check(counter == uncontendedOps, "mutex_uncontended")
	return float64(ns) / uncontendedOps
}

func mutexContended() float64 {
	var m sync.Mutex
	var counter uint64
	ns := timedTeam(contendedThreads, func(int) {
		for i := 0; i < contendedOps; i++ {
			m.Lock()
			counter++
			m.Unlock()
		}
	}, func() {})
	check(counter == contendedThreads*contendedOps, "mutex_contended")
	return float64(ns) / (contendedThreads * contendedOps)
}

func rwlockReadHeavy() float64 {
	var l sync.RWMutex
	var value uint64
	var sinkMu sync.Mutex
	ns := timedTeam(rwThreads, func(int) {
		var seen uint64
		for i := 0; i < rwOps; i++ {
			if i%rwWriteEvery == rwWriteEvery-1 {
				l.Lock()
				value++
				l.Unlock()
			} else {
				l.RLock()
				seen += value
				l.RUnlock()
			}
		}
		sinkMu.Lock()
		sink += seen
		sinkMu.Unlock()
	}, func() {})
	check(value == rwThreads*(rwOps/rwWriteEvery), "rwlock_read_heavy")
	return float64(ns) / (rwThreads * rwOps)
}

func rwlockUncontendedRead() float64 {
	var l sync.RWMutex
	value := uint64(1)
	var seen uint64
	start := time.Now()
	for i := 0; i < uncontendedOps; i++ {
		l.RLock()
		seen += value
		l.RUnlock()
	}
	ns := time.Since(start).Nanoseconds()
	check(seen == uncontendedOps, "rwlock_uncontended_read")
	sink += seen
	return float64(ns) / uncontendedOps
}

// Two goroutines hand a turn flag back and forth through one mutex and one
// sync.Cond; only the other one can be waiting, so Signal suffices.
func condvarPingpong() float64 {
	var m sync.Mutex
	c := sync.NewCond(&m)
	turn := 0
	ns := timedTeam(2, func(me int) {
		for i := 0; i < handoffs/2; i++ {
			m.Lock()
			for turn != me {
				c.Wait()
			}
			turn = 1 - me
			c.Signal()
			m.Unlock()
		}
	}, func() {})
	check(turn == 0, "condvar_pingpong")
	return float64(ns) / handoffs
}

// ---- channels ----------------------------------------------------------------

const (
	msgsLarge     = 1_000_000 // unbounded, boundedN
	msgsSmall     = 400_000   // bounded0, bounded1
	side          = 4
	pingpongTrips = 50_000
)

func expectedSum(n uint64) uint64 { return n * (n - 1) / 2 }

// chanSeq: one goroutine sends all n messages, then receives all.
func chanSeq(capacity int, n uint64, name string) float64 {
	ch := make(chan uint64, capacity)
	start := time.Now()
	for v := uint64(0); v < n; v++ {
		ch <- v
	}
	var sum uint64
	for i := uint64(0); i < n; i++ {
		sum += <-ch
	}
	ns := time.Since(start).Nanoseconds()
	check(sum == expectedSum(n), name)
	return float64(ns) / float64(n)
}

// chanThreads: `senders` goroutines send n messages between them;
// `receivers` goroutines receive n/receivers each, or the main goroutine
// receives all when receivers is 0. The channel is made before the timer.
func chanThreads(capacity int, n uint64, senders, receivers int, name string) float64 {
	ch := make(chan uint64, capacity)
	perSender := n / uint64(senders)
	perReceiver := n
	if receivers > 0 {
		perReceiver = n / uint64(receivers)
	}
	sums := make([]uint64, receivers+1)
	receive := func(slot int) {
		var sum uint64
		for i := uint64(0); i < perReceiver; i++ {
			sum += <-ch
		}
		sums[slot] = sum
	}
	ns := timedTeam(senders+receivers, func(i int) {
		if i < senders {
			first := perSender * uint64(i)
			for v := first; v < first+perSender; v++ {
				ch <- v
			}
		} else {
			receive(i - senders)
		}
	}, func() {
		if receivers == 0 {
			receive(receivers)
		}
	})
	var total uint64
	for _, s := range sums {
		total += s
	}
	check(total == expectedSum(n), name)
	return float64(ns) / float64(n)
}

// chanPingpong: A (main goroutine) sends on one channel of capacity 1, B
// receives and sends it back on another, A receives. op = one round trip.
func chanPingpong() float64 {
	there := make(chan uint64, 1)
	back := make(chan uint64, 1)
	var sum uint64
	ns := timedTeam(1, func(int) {
		for i := 0; i < pingpongTrips; i++ {
			back <- <-there
		}
	}, func() {
		for v := uint64(0); v < pingpongTrips; v++ {
			there <- v
			sum += <-back
		}
	})
	check(sum == expectedSum(pingpongTrips), "chan_pingpong")
	return float64(ns) / pingpongTrips
}

func main() {
	if len(os.Args) > 1 {
		filter = os.Args[1]
	} else {
		filter = os.Getenv("BENCH")
	}
	if r, err := strconv.Atoi(os.Getenv("OX_BENCH_ROUNDS")); err == nil && r >= 1 && r <= 100 {
		rounds = r
	}

	run("mutex_uncontended", mutexUncontended)
	run("mutex_contended", mutexContended)
	run("rwlock_read_heavy", rwlockReadHeavy)
	run("rwlock_uncontended_read", rwlockUncontendedRead)
	run("condvar_pingpong", condvarPingpong)

	for _, shape := range []string{"seq", "spsc", "mpsc", "mpmc"} {
		skip("chan_"+shape+"_unbounded", "Go has no unbounded channel")
	}
	flavors := []struct {
		name     string
		capacity int
		n        uint64
	}{
		{"bounded0", 0, msgsSmall},
		{"bounded1", 1, msgsSmall},
		{"boundedN", msgsLarge, msgsLarge},
	}
	for _, f := range flavors {
		f := f
		if f.n == msgsLarge {
			w := "chan_seq_" + f.name
			run(w, func() float64 { return chanSeq(f.capacity, f.n, w) })
		}
		w1 := "chan_spsc_" + f.name
		run(w1, func() float64 { return chanThreads(f.capacity, f.n, 1, 0, w1) })
		w2 := "chan_mpsc_" + f.name
		run(w2, func() float64 { return chanThreads(f.capacity, f.n, side, 0, w2) })
		w3 := "chan_mpmc_" + f.name
		run(w3, func() float64 { return chanThreads(f.capacity, f.n, side, side, w3) })
	}
	run("chan_pingpong", chanPingpong)

	runTaskWorkloads()
}
