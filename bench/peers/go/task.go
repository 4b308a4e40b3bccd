// The task workloads of bench/WORKLOADS.md (issue 13) on goroutines, with
// GOMAXPROCS=2 (oxide's and Tokio's runtimes have 2 workers). The main
// goroutine drives each workload and reads the clock.
package main

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const taskWorkers = 2

// withWorkers runs f with GOMAXPROCS=2 and restores the previous value.
func withWorkers(f func() float64) func() float64 {
	return func() float64 {
		previous := runtime.GOMAXPROCS(taskWorkers)
		defer runtime.GOMAXPROCS(previous)
		return f()
	}
}

// ---- task_spawn_join ---------------------------------------------------------

const (
	spawnBatch   = 1000
	spawnBatches = 100
)

// Go has no join handle: each goroutine stores its result and a WaitGroup
// waits for the batch.
func taskSpawnJoin() float64 {
	results := make([]uint64, spawnBatch)
	var sum uint64
	start := time.Now()
	for b := 0; b < spawnBatches; b++ {
		var wg sync.WaitGroup
		wg.Add(spawnBatch)
		for i := 0; i < spawnBatch; i++ {
			go func(i int) {
				results[i] = uint64(i + 1)
				wg.Done()
			}(i)
		}
		wg.Wait()
		for _, r := range results {
			sum += r
		}
	}
	ns := time.Since(start).Nanoseconds()
	check(sum == spawnBatches*spawnBatch*(spawnBatch+1)/2, "task_spawn_join")
	return float64(ns) / (spawnBatches * spawnBatch)
}

// ---- task_yield_1pair, task_yield_1000pairs ----------------------------------

// 2*pairs goroutines each call Gosched n times; op = one round of a pair.
func taskYieldPairs(pairs, n int, name string) float64 {
	var yields int64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2 * pairs)
	for t := 0; t < 2*pairs; t++ {
		go func() {
			i := 0
			for ; i < n; i++ {
				runtime.Gosched()
			}
			atomic.AddInt64(&yields, int64(i))
			wg.Done()
		}()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	check(yields == int64(2*pairs*n), name)
	return float64(ns) / float64(pairs*n)
}

// ---- task_skynet -------------------------------------------------------------

const (
	skynetLeaves = 1_000_000
	skynetDiv    = 10
	skynetTasks  = 1_111_111 // 1 + 10 + ... + 10^6
)

// The classic Go skynet: each node sends its sum to its parent's channel.
func skynet(c chan<- uint64, num, size uint64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan uint64)
	step := size / skynetDiv
	for i := uint64(0); i < skynetDiv; i++ {
		go skynet(rc, num+i*step, step)
	}
	var sum uint64
	for i := 0; i < skynetDiv; i++ {
		sum += <-rc
	}
	c <- sum
}

func taskSkynet() float64 {
	c := make(chan uint64)
	start := time.Now()
	go skynet(c, 0, skynetLeaves)
	sum := <-c
	ns := time.Since(start).Nanoseconds()
	check(sum == expectedSum(skynetLeaves), "task_skynet")
	return float64(ns) / skynetTasks
}

// ---- task_mutex_64 -----------------------------------------------------------

const (
	mutexTasks = 64
	mutexOps   = 20_000
)

func taskMutex64() float64 {
	var m sync.Mutex
	var count uint64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(mutexTasks)
	for t := 0; t < mutexTasks; t++ {
		go func() {
			for i := 0; i < mutexOps; i++ {
				m.Lock()
				count++
				m.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	check(count == mutexTasks*mutexOps, "task_mutex_64")
	return float64(ns) / (mutexTasks * mutexOps)
}

// ---- task_chan_pingpong ------------------------------------------------------

const taskPingpongTrips = 100_000

// Two unbuffered (rendezvous) channels: A sends on there, B receives and
// sends back, A receives.
func taskChanPingpong() float64 {
	there := make(chan uint64)
	back := make(chan uint64)
	done := make(chan struct{})
	var sum uint64
	start := time.Now()
	go func() {
		for i := 0; i < taskPingpongTrips; i++ {
			back <- <-there
		}
		close(done)
	}()
	for v := uint64(0); v < taskPingpongTrips; v++ {
		there <- v
		sum += <-back
	}
	<-done
	ns := time.Since(start).Nanoseconds()
	check(sum == expectedSum(taskPingpongTrips), "task_chan_pingpong")
	return float64(ns) / taskPingpongTrips
}

// ---- task_sleep_p99_ns -------------------------------------------------------

const (
	sleepers = 100_000
	sleepFor = time.Millisecond
)

// The value is the 99th percentile of how late each sleep woke, in ns.
func taskSleepP99() float64 {
	lateness := make([]int64, sleepers)
	for i := range lateness {
		lateness[i] = -1 // a goroutine that never ran would leave this
	}
	var wg sync.WaitGroup
	wg.Add(sleepers)
	for i := 0; i < sleepers; i++ {
		go func(i int) {
			start := time.Now()
			time.Sleep(sleepFor)
			lateness[i] = time.Since(start).Nanoseconds() - sleepFor.Nanoseconds()
			wg.Done()
		}(i)
	}
	wg.Wait()
	sort.Slice(lateness, func(a, b int) bool { return lateness[a] < lateness[b] })
	check(lateness[0] >= 0, "task_sleep_p99_ns")
	return float64(lateness[sleepers/100*99])
}

// ---- task_idle_bytes, task_1M_blocked_bytes ----------------------------------

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	check(err == nil, "rss")
	fields := strings.Fields(string(data))
	check(len(fields) > 1, "rss")
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	check(err == nil, "rss")
	return pages * int64(os.Getpagesize())
}

// n goroutines block receiving on one unbuffered channel; the value is the
// RSS growth per goroutine once all are blocked. Then each gets a value,
// all finish, and every one must have received exactly one.
func taskBlockedBytes(n int, name string) float64 {
	ch := make(chan uint64)
	var waiting int64
	var sum uint64
	var wg sync.WaitGroup
	runtime.GC()
	before := rssBytes()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&waiting, 1)
			v := <-ch
			atomic.AddUint64(&sum, v+1)
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&waiting) < int64(n) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the last ones get from the count into the wait
	after := rssBytes()
	for v := uint64(0); v < uint64(n); v++ {
		ch <- v
	}
	wg.Wait()
	check(sum == uint64(n)*uint64(n+1)/2, name)
	return float64(after-before) / float64(n)
}

func runTaskWorkloads() {
	run("task_spawn_join", withWorkers(taskSpawnJoin))
	run("task_yield_1pair", withWorkers(func() float64 { return taskYieldPairs(1, 200_000, "task_yield_1pair") }))
	run("task_yield_1000pairs", withWorkers(func() float64 { return taskYieldPairs(1000, 1000, "task_yield_1000pairs") }))
	run("task_skynet", withWorkers(taskSkynet))
	run("task_mutex_64", withWorkers(taskMutex64))
	run("task_chan_pingpong", withWorkers(taskChanPingpong))
	run("task_sleep_p99_ns", withWorkers(taskSleepP99))
	run("task_idle_bytes", withWorkers(func() float64 { return taskBlockedBytes(10_000, "task_idle_bytes") }))
	run("task_1M_blocked_bytes", withWorkers(func() float64 { return taskBlockedBytes(1_000_000, "task_1M_blocked_bytes") }))
}
