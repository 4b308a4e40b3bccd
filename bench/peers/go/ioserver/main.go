// Go's servers for the I/O benchmarks (bench/WORKLOADS.md, "I/O"), with
// GOMAXPROCS at its default (the CPU count).
//
// Usage: ioserver MODE PORT, MODE "echo" or "http". Listens on
// 127.0.0.1:PORT, prints "ready" once it accepts, runs until killed.
//   - echo: a goroutine per connection reads what came (into a 4 KiB
//     buffer of its own) and writes it back.
//   - http: net/http answering every request with the fixed body, as
//     text/plain (Go adds Date and Content-Length).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

var body = []byte("Hello, World!")

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func hello(w http.ResponseWriter, r *http.Request) {
	// Set directly: no canonicalisation, and no content sniffing.
	w.Header()["Content-Type"] = []string{"text/plain"}
	w.Write(body)
}

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "echo" && os.Args[1] != "http") {
		fmt.Fprintln(os.Stderr, "usage: ioserver echo|http PORT")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ioserver:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if os.Args[1] == "http" {
		fmt.Fprintln(os.Stderr, "ioserver:", http.Serve(ln, http.HandlerFunc(hello)))
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "ioserver: accept:", err)
			continue
		}
		go echo(c)
	}
}
