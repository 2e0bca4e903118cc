// Package redistest starts real redis-server processes for tests: a single
// node (Start, StartWith) or a Redis Cluster (StartCluster). Each server runs
// on a free loopback port in its own temp dir and process group, and is
// killed when the test (or the owner of Launch/LaunchCluster) cleans up.
//
// If redis-server (or redis-cli, for a cluster) is not installed the test
// fails: nothing here skips.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 15 * time.Second

// Options tune a server.
type Options struct {
	// AppendOnly turns on the AOF with appendfsync always, so data written
	// before Stop survives Restart.
	AppendOnly bool
	// Args are extra redis-server arguments, e.g. "--maxmemory", "1mb".
	Args []string
}

// StartOptions is another name for Options.
type StartOptions = Options

// Server is one redis-server process. Addr stays the same across Restart.
type Server struct {
	Addr string // "127.0.0.1:port"

	port, busPort int // busPort: 0 unless cluster-enabled
	dir           string
	args          []string
	t             testing.TB // nil for Launch

	mu      sync.Mutex
	proc    *os.Process
	done    chan struct{} // closed when proc has been reaped
	clients []*redis.Client
	ownDir  bool // dir created by Launch, removed by Close
}

// Start launches redis-server for the duration of t (killed on t.Cleanup).
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := launch(t.TempDir(), o, false)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// Launch starts a server not tied to a test, for a server shared by a whole
// test binary (start it lazily, Close it after m.Run in TestMain).
func Launch(o Options) (*Server, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	s, err := launch(dir, o, false)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.ownDir = true
	return s, nil
}

func launch(dir string, o Options, cluster bool) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH (install it: apt-get install redis-server): %w", err)
	}
	var lastErr error
	// A free port may be taken between probing and binding: try again on a new one.
	for attempt := 0; attempt < 3; attempt++ {
		s := &Server{dir: dir}
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if cluster {
			if s.busPort, err = freePort(); err != nil {
				return nil, err
			}
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.args = append([]string{bin,
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--save", "",
			"--daemonize", "no",
			"--enable-debug-command", "local",
		}, s.aofArgs(o.AppendOnly)...)
		if cluster {
			s.args = append(s.args,
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "2000",
				"--cluster-port", strconv.Itoa(s.busPort))
		}
		s.args = append(s.args, o.Args...)
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) aofArgs(on bool) []string {
	if !on {
		return []string{"--appendonly", "no"}
	}
	return []string{"--appendonly", "yes", "--appendfsync", "always"}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the process and waits until it answers PING.
func (s *Server) start() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open redis log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so Stop kills forked children (BGSAVE, AOF
	// rewrite) too; SIGKILL if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // reap: no zombies
	s.mu.Lock()
	s.proc, s.done = cmd.Process, done
	s.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, PoolSize: 1})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		var info string
		info, err = c.Info(ctx, "server").Result()
		cancel()
		// Another process may have grabbed the port first: only our
		// own redis-server counts as ready.
		if err == nil {
			if strings.Contains(info, "process_id:"+strconv.Itoa(cmd.Process.Pid)+"\r\n") {
				return nil
			}
			err = fmt.Errorf("port %d answered by another process", s.port)
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited during start-up: %s", s.Addr, s.logTail())
		case <-time.After(10 * time.Millisecond): // poll interval, bounded by the deadline below
		}
		if time.Now().After(deadline) || strings.Contains(err.Error(), "another process") {
			s.Stop()
			return fmt.Errorf("redis-server on %s not ready within %v (last error: %v): %s", s.Addr, startTimeout, err, s.logTail())
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Stop kills the server (SIGKILL to its process group, like a crash) and
// waits until it has exited. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	p, done := s.proc, s.done
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	<-done
}

// Freeze stops the server's process (SIGSTOP) without closing its socket:
// connections succeed but nothing is answered, like a Redis stuck on a
// slow disk or a paused VM. Thaw resumes it; Stop and cleanup thaw first.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		_ = syscall.Kill(-p.Pid, sig)
	}
}

// Restart stops the server if it runs and starts it again on the same port
// and dir. Data survives only with Options.AppendOnly.
func (s *Server) Restart() {
	s.Stop()
	if err := s.start(); err != nil {
		s.fail(fmt.Errorf("restart: %w", err))
	}
}

func (s *Server) fail(err error) {
	if s.t != nil {
		s.t.Helper()
		s.t.Fatalf("redistest: %v", err)
	}
	panic("redistest: " + err.Error())
}

// Client returns a new client for Addr, closed on cleanup (end of the test
// for Start, Close for Launch).
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	if s.t != nil {
		s.t.Cleanup(func() { c.Close() })
		return c
	}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Close stops the server and closes the clients handed out by Client when
// no test owns them. Start registers Close on t.Cleanup.
func (s *Server) Close() {
	s.Stop()
	s.mu.Lock()
	cs := s.clients
	s.clients = nil
	s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
}
