//go:build linux

// Command fanfloor measures the hard floor of #14's WebSocket fan-out on
// this machine, outside Spectra's stack: N TCP sockets on loopback, a
// server that writes each message as one pre-built WebSocket text frame to
// every socket with write(2) from W writer threads (runtime.LockOSThread,
// raw file descriptors, no Go netpoller, no HTTP, no WebSocket library),
// and the sockets' client ends in a child process (this binary, -client)
// reading them from T epoll loops, parsing the frames and timestamping
// every message against the send time it carries. It prints the latency
// from the start of a message's fan-out to each socket's receipt (p50, p99,
// max), the server's writer threads' user and kernel CPU per write
// (getrusage RUSAGE_THREAD), and the client process's CPU per message.
//
//	go run ./tools/fanfloor -sockets 10000 -events 30 -every 200ms
//
// Knobs for what could lower it: -writers, -sndbuf, -rcvbuf, -nodelay,
// -client-threads, -busy (clients poll epoll without sleeping), -size.
// Run it as the other benchmarks, under the bench lock at nice -15:
//
//	flock /work/bench.lock nice -n -15 ionice -c2 -n0 go run ./tools/fanfloor …
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	sockets       = flag.Int("sockets", 10000, "sockets")
	events        = flag.Int("events", 30, "messages fanned out")
	every         = flag.Duration("every", 200*time.Millisecond, "between messages")
	writers       = flag.Int("writers", runtime.NumCPU(), "writer threads of the server (one per core by default)")
	sndbuf        = flag.Int("sndbuf", 0, "SO_SNDBUF of the server's sockets (0: the kernel's default)")
	rcvbuf        = flag.Int("rcvbuf", 0, "SO_RCVBUF of the clients' sockets (0: the kernel's default)")
	nodelay       = flag.Bool("nodelay", true, "TCP_NODELAY on the server's sockets")
	clientThreads = flag.Int("client-threads", runtime.NumCPU(), "epoll loops of the client process")
	busy          = flag.Bool("busy", false, "clients poll epoll without sleeping (timeout 0)")
	size          = flag.Int("size", 640, "payload bytes of a message (a telemetry message of the benchmark is about this)")
	client        = flag.String("client", "", "internal: run as the client process, connecting to this address")
	perWrite      = flag.Int("batch", 1, "messages per write: 1 is #14's case; k > 1 fans out every k-th message with the k last ones in one write")
)

func main() {
	flag.Parse()
	if *client != "" {
		runClients(*client)
		return
	}
	if err := runServer(); err != nil {
		fmt.Fprintln(os.Stderr, "fanfloor:", err)
		os.Exit(1)
	}
}

func raiseFileLimit() {
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// frame builds the text frame of message i: a JSON payload of size bytes
// carrying its send time.
func frame(i int, sent int64, last bool) []byte {
	kind := "telemetry"
	if last {
		kind = "completed"
	}
	p := fmt.Appendf(nil, `{"type":%q,"seq":%d,"sent":%d,"data":{"pad":"`, kind, i, sent)
	for len(p) < *size-3 {
		p = append(p, 'x')
	}
	p = append(p, `"}}`...)
	f := []byte{0x81, 0}
	switch n := len(p); {
	case n < 126:
		f[1] = byte(n)
	case n <= 0xFFFF:
		f[1] = 126
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f[1] = 127
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	return append(f, p...)
}

func threadCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func processCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func runServer() error {
	raiseFileLimit()
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_ = syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return err
	}
	sa, _ := syscall.Getsockname(lfd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)

	args := []string{"-client", addr, "-sockets", strconv.Itoa(*sockets), "-client-threads", strconv.Itoa(*clientThreads),
		"-busy=" + strconv.FormatBool(*busy), "-rcvbuf", strconv.Itoa(*rcvbuf)}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Wait() }()

	fds := make([]int, 0, *sockets)
	for len(fds) < *sockets {
		fd, _, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return err
		}
		if *nodelay {
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		}
		if *sndbuf > 0 {
			_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, *sndbuf)
		}
		fds = append(fds, fd)
	}
	_ = syscall.Close(lfd)
	lines := bufio.NewScanner(out)
	expect := func(prefix string) (string, error) {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix), nil
			}
		}
		return "", fmt.Errorf("clients ended before %q", prefix)
	}
	if _, err := expect("READY"); err != nil {
		return err
	}

	// The writers: one locked thread each, a stripe of the sockets each.
	type job struct {
		frame []byte
	}
	type stat struct {
		user, sys time.Duration
		writes    int
		spanNs    int64 // first to last write of the message, summed
	}
	starts := make([]chan job, *writers)
	dones := make(chan stat, *writers)
	var wg sync.WaitGroup
	for w := range *writers {
		starts[w] = make(chan job)
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var mine []int
			for i := w; i < len(fds); i += *writers {
				mine = append(mine, fds[i])
			}
			for j := range starts[w] {
				u0, s0 := threadCPU()
				t0 := time.Now()
				for _, fd := range mine {
					p := j.frame
					for len(p) > 0 {
						n, err := syscall.Write(fd, p)
						if err == syscall.EINTR {
							continue
						}
						if err != nil {
							fmt.Fprintln(os.Stderr, "write:", err)
							break
						}
						p = p[n:]
					}
				}
				u1, s1 := threadCPU()
				dones <- stat{user: u1 - u0, sys: s1 - s0, writes: len(mine), spanNs: time.Since(t0).Nanoseconds()}
			}
		}()
	}
	var total stat
	fan := func(f []byte) {
		for _, c := range starts {
			c <- job{frame: f}
		}
		for range starts {
			s := <-dones
			total.user += s.user
			total.sys += s.sys
			total.writes += s.writes
			total.spanNs += s.spanNs
		}
	}
	pu0, ps0 := processCPU()
	var pending []byte
	k := max(*perWrite, 1)
	for i := range *events {
		last := i == *events-1
		pending = append(pending, frame(i, time.Now().UnixNano(), false)...)
		if (i+1)%k == 0 || last {
			fan(pending)
			pending = pending[:0]
		}
		time.Sleep(*every)
	}
	fan(frame(*events, time.Now().UnixNano(), true))
	pu1, ps1 := processCPU()
	for _, c := range starts {
		close(c)
	}
	wg.Wait()
	res, err := expect("RESULT ")
	if err != nil {
		return err
	}
	var p50, p99, worst, n int64
	var cu, cs int64
	if _, err := fmt.Sscan(res, &p50, &p99, &worst, &n, &cu, &cs); err != nil {
		return fmt.Errorf("result %q: %w", res, err)
	}
	var l [3]float64
	_ = loadavg(&l)
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	fanouts := (*events + k - 1) / k
	fmt.Printf("sockets=%d events=%d every=%s writers=%d client-threads=%d busy=%t sndbuf=%d rcvbuf=%d nodelay=%t size=%d batch=%d load=%.2f\n",
		*sockets, *events, *every, *writers, *clientThreads, *busy, *sndbuf, *rcvbuf, *nodelay, *size, k, l[0])
	fmt.Printf("  latency p50 %.1f ms  p99 %.1f ms  max %.1f ms  deliveries %d (want %d)\n", ms(p50), ms(p99), ms(worst), n, *sockets**events)
	fmt.Printf("  server writers: %.2f µs/write (user %.2f, kernel %.2f), %d writes; fan-out span %.1f ms per message per writer; process CPU %.2f µs/write\n",
		float64((total.user+total.sys).Nanoseconds())/1e3/float64(total.writes),
		float64(total.user.Nanoseconds())/1e3/float64(total.writes), float64(total.sys.Nanoseconds())/1e3/float64(total.writes),
		total.writes, ms(total.spanNs/int64(*writers*(fanouts+1))),
		float64((pu1-pu0+ps1-ps0).Nanoseconds())/1e3/float64(total.writes))
	fmt.Printf("  client process: %.2f µs/delivery (user %.2f, kernel %.2f) from READY on\n",
		float64(cu+cs)/1e3/float64(max(n, 1)), float64(cu)/1e3/float64(max(n, 1)), float64(cs)/1e3/float64(max(n, 1)))
	if n != int64(*sockets**events) {
		return fmt.Errorf("%d deliveries, want %d", n, *sockets**events)
	}
	return nil
}

func loadavg(l *[3]float64) error {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return err
	}
	_, err = fmt.Sscan(string(b), &l[0], &l[1], &l[2])
	return err
}

// conn is a client socket's state: the bytes of a frame not yet whole.
type conn struct {
	fd   int
	rest []byte
	done bool
}

func runClients(addr string) {
	raiseFileLimit()
	host, port, _ := strings.Cut(addr, ":")
	_ = host
	p, _ := strconv.Atoi(port)
	sa := &syscall.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}
	conns := make([]*conn, *sockets)
	for i := range conns {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "socket:", err)
			os.Exit(1)
		}
		if *rcvbuf > 0 {
			_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, *rcvbuf)
		}
		for {
			err = syscall.Connect(fd, sa)
			if err != syscall.EINTR {
				break
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(1)
		}
		_ = syscall.SetNonblock(fd, true)
		conns[i] = &conn{fd: fd}
	}
	threads := max(*clientThreads, 1)
	lat := make([][]int64, threads)
	var wg sync.WaitGroup
	ready := make(chan struct{}, threads)
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
			if err != nil {
				panic(err)
			}
			byFd := map[int]*conn{}
			for i := t; i < len(conns); i += threads {
				c := conns[i]
				byFd[c.fd] = c
				if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, c.fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(c.fd)}); err != nil {
					panic(err)
				}
			}
			ready <- struct{}{}
			mine := make([]int64, 0, len(byFd)*(*events))
			left := len(byFd)
			evs := make([]syscall.EpollEvent, 512)
			buf := make([]byte, 64<<10)
			timeout := -1
			if *busy {
				timeout = 0
			}
			for left > 0 {
				n, err := syscall.EpollWait(ep, evs, timeout)
				if err != nil {
					if err == syscall.EINTR {
						continue
					}
					panic(err)
				}
				for _, ev := range evs[:n] {
					c := byFd[int(ev.Fd)]
					for {
						m, err := syscall.Read(c.fd, buf)
						if err == syscall.EINTR {
							continue
						}
						if m <= 0 {
							break
						}
						now := time.Now().UnixNano()
						data := buf[:m]
						if len(c.rest) > 0 {
							c.rest = append(c.rest, data...)
							data = c.rest
						}
						data = frames(data, func(payload []byte) {
							if bytes.HasPrefix(payload, []byte(`{"type":"completed"`)) {
								c.done = true
								return
							}
							if i := bytes.Index(payload, []byte(`"sent":`)); i >= 0 {
								rest := payload[i+7:]
								j := bytes.IndexByte(rest, ',')
								if sent, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
									mine = append(mine, now-sent)
								}
							}
						})
						c.rest = append(c.rest[:0], data...)
						if m < len(buf) {
							break
						}
					}
					if c.done {
						left--
						_ = syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
						c.done = false
					}
				}
			}
			lat[t] = mine
		}()
	}
	for range threads {
		<-ready
	}
	u0, s0 := processCPU()
	fmt.Println("READY")
	wg.Wait()
	u, s := processCPU()
	u, s = u-u0, s-s0
	var all []int64
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		fmt.Println("RESULT 0 0 0 0 0 0")
		return
	}
	q := func(p float64) int64 { return all[min(len(all)-1, int(p*float64(len(all))))] }
	fmt.Printf("RESULT %d %d %d %d %d %d\n", q(0.50), q(0.99), all[len(all)-1], len(all), u.Nanoseconds(), s.Nanoseconds())
}

// frames calls f with the payload of each whole frame at the start of
// data and returns what is left (a frame not yet whole).
func frames(data []byte, f func([]byte)) []byte {
	for len(data) >= 2 {
		n, h := int(data[1]&0x7f), 2
		switch n {
		case 126:
			if len(data) < 4 {
				return data
			}
			n, h = int(binary.BigEndian.Uint16(data[2:])), 4
		case 127:
			if len(data) < 10 {
				return data
			}
			n, h = int(binary.BigEndian.Uint64(data[2:])), 10
		}
		if len(data) < h+n {
			return data
		}
		f(data[h : h+n])
		data = data[h+n:]
	}
	return data
}
