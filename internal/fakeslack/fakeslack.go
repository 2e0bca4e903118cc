// Package fakeslack is an in-process fake of the parts of Slack that
// isolate-bot uses, for end-to-end tests: the Web API methods the bot calls
// and Socket Mode over real WebSockets. The unmodified slack-go client runs
// against it:
//
//	fs := fakeslack.New(t, fakeslack.Options{Channels: []string{"C1"}})
//	api := slack.New(fs.BotToken(), slack.OptionAppLevelToken(fs.AppToken()),
//		slack.OptionAPIURL(fs.APIURL()))
//	client := socketmode.New(api, socketmode.OptionPingInterval(time.Second))
//
// Tests then play the user (SlashCommand, Click), inject faults (FailNext,
// FailAlways, Hang, Disconnect, DropConnections) and observe what the bot did
// (WaitAck, Messages, WaitThread, Ephemerals, Calls, ConnStats). Every method
// is safe for concurrent use. Wait* methods block until their condition holds
// or the timeout passes; they are woken by state changes, never by sleeping.
package fakeslack

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Options configures a Server. Zero fields take the documented defaults.
type Options struct {
	// AppToken is the app-level token (xapp-…) that apps.connections.open
	// accepts as a Bearer token. Default "xapp-1-fake".
	AppToken string
	// BotToken is the bot token (xoxb-…) the Web API accepts, in the form
	// field "token" or as a Bearer token. Any other token gets invalid_auth.
	// Default "xoxb-fake".
	BotToken string
	// BotUserID is the bot's user id, returned by auth.test and put on the
	// bot's messages. Default "U0BOT".
	BotUserID string
	// BotID is the bot's bot id ("B…"). Default "B0BOT".
	BotID string
	// TeamID is the workspace id. Default "T0TEAM".
	TeamID string
	// AppID is the Slack app id. Default "A0APP".
	AppID string
	// PingInterval is how often WebSocket PING control frames are sent on
	// every connection. It must be shorter than the client's
	// socketmode.OptionPingInterval (slack-go default 30 s). Default 200 ms.
	PingInterval time.Duration
	// RedeliveryTimeout is how long an envelope may stay unacked before it
	// is redelivered, once, with retry_attempt 1 and retry_reason
	// "timeout": on another live connection if there is one, else on the
	// same one, else on the next to connect. Default 2 s.
	RedeliveryTimeout time.Duration
	// DisconnectGrace is how long a connection that was sent a "disconnect"
	// message stays open before the fake closes it (the client normally
	// closes it first). Default 1 s.
	DisconnectGrace time.Duration
	// Channels lists the channels the bot is a member of; chat.postMessage,
	// chat.update and chat.postEphemeral elsewhere fail with not_in_channel.
	// Empty means the bot is a member of every channel.
	Channels []string
	// UserGroups maps a user group id ("S…") to its members, for
	// usergroups.users.list. Unknown groups give no_such_subteam.
	UserGroups map[string][]string
	// Users are the users users.info knows. When nil, users.info invents a
	// plain (non-bot, non-deleted) user for any id; when non-nil, ids not in
	// the map give user_not_found.
	Users map[string]User
}

// User is a workspace member as users.info returns it.
type User struct {
	ID       string
	Name     string // handle; default: the id in lower case
	RealName string
	Email    string
	TZ       string
	Deleted  bool
	IsBot    bool
}

// Server is a running fake Slack. Create it with New; it is closed by
// t.Cleanup.
type Server struct {
	t    testing.TB
	opts Options
	srv  *httptest.Server
	up   websocket.Upgrader

	done chan struct{} // closed when the server shuts down
	wg   sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	closed  bool
	seq     int64 // ts, envelope, trigger and ticket counter

	tickets   map[string]bool
	faults    map[string][]fault
	always    map[string]*fault
	hangs     map[string]time.Duration
	calls     []Call
	channels  map[string]bool
	messages  map[string][]*Message // channel → messages in post order
	ephemeral []Ephemeral
	responses []ResponsePost
	respURLs  map[string]*respURL

	conns     []*conn // every connection ever accepted, by id-1
	rr        int     // round-robin cursor
	envelopes []*envelope
	envByID   map[string]*envelope
	queue     []*envelope // waiting for a live connection
	acks      []Ack
}

// New starts a fake Slack on a loopback port and registers its shutdown with
// t.Cleanup.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&opts.AppToken, "xapp-1-fake")
	def(&opts.BotToken, "xoxb-fake")
	def(&opts.BotUserID, "U0BOT")
	def(&opts.BotID, "B0BOT")
	def(&opts.TeamID, "T0TEAM")
	def(&opts.AppID, "A0APP")
	if opts.PingInterval <= 0 {
		opts.PingInterval = 200 * time.Millisecond
	}
	if opts.RedeliveryTimeout <= 0 {
		opts.RedeliveryTimeout = 2 * time.Second
	}
	if opts.DisconnectGrace <= 0 {
		opts.DisconnectGrace = time.Second
	}
	s := &Server{
		t:    t,
		opts: opts,
		// slack-go dials with Origin: https://api.slack.com, which gorilla's
		// default origin check rejects.
		up:       websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		tickets:  map[string]bool{},
		faults:   map[string][]fault{},
		always:   map[string]*fault{},
		hangs:    map[string]time.Duration{},
		messages: map[string][]*Message{},
		respURLs: map[string]*respURL{},
		envByID:  map[string]*envelope{},
	}
	if len(opts.Channels) > 0 {
		s.channels = map[string]bool{}
		for _, c := range opts.Channels {
			s.channels[c] = true
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/link/", s.handleLink)
	mux.HandleFunc("/response/", s.handleResponseURL)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// APIURL is the Web API base URL for slack.OptionAPIURL, with the trailing
// slash slack-go needs: "http://127.0.0.1:PORT/api/".
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// URL is the server's base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.srv.URL }

// AppToken is the app-level token the server accepts (Options.AppToken).
func (s *Server) AppToken() string { return s.opts.AppToken }

// BotToken is the bot token the server accepts (Options.BotToken).
func (s *Server) BotToken() string { return s.opts.BotToken }

// BotUserID is the bot's user id (Options.BotUserID).
func (s *Server) BotUserID() string { return s.opts.BotUserID }

// TeamID is the workspace id (Options.TeamID).
func (s *Server) TeamID() string { return s.opts.TeamID }

// Close shuts the server down: WebSockets are closed abruptly, hanging
// calls return, and all of the fake's goroutines have exited when it
// returns. It is idempotent and called by t.Cleanup.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	conns := append([]*conn(nil), s.conns...)
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
	s.srv.Close()
	s.wg.Wait()
}

// notifyLocked wakes every waiter. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ErrTimeout is returned (wrapped) by the Wait methods when their condition
// did not hold in time.
var ErrTimeout = errors.New("fakeslack: timed out")

// waitFor blocks until cond (called with s.mu held) returns true, the
// timeout passes or the server closes.
func (s *Server) waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		closed := s.closed
		s.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			return fmt.Errorf("waiting for %s: fakeslack server closed", what)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("waiting %v for %s: %w", timeout, what, ErrTimeout)
		}
	}
}

// nextLocked returns the next value of the shared counter. s.mu must be held.
func (s *Server) nextLocked() int64 {
	s.seq++
	return s.seq
}

// tsLocked returns a fresh message timestamp. They are unique and increase
// in both numeric and string order ("1700000000.000100", "….000200", …).
func (s *Server) tsLocked() string {
	micros := s.nextLocked() * 100
	return fmt.Sprintf("%d.%06d", 1700000000+micros/1e6, micros%1e6)
}

// Permalink is the link chat.getPermalink returns for ts in channel.
func Permalink(channel, ts string) string {
	return "https://fake.slack.test/archives/" + channel + "/p" + strings.ReplaceAll(ts, ".", "")
}
