//go:build !linux

// Command fanfloor measures the fan-out floor; it needs Linux (epoll).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fanfloor: Linux only")
	os.Exit(1)
}
