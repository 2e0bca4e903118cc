// Package console is the terminal try-out of isolate-bot ("bot console"):
// a transport over the same commands.Service as the Slack bot. It reads
// commands from a reader (a terminal or a piped script), lets the user
// switch identity to play analyst and manager, and prints request cards,
// their audit threads and ephemeral replies as text.
package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/soc/isolate-bot/commands"
)

// Identity is a user the console can act as.
type Identity struct {
	ID   string // Slack-style user id, e.g. U0ANALYST
	Name string // shown as @Name; the id when empty
	Role string // free text for the banner, e.g. "analyst"
}

// Service is the part of *commands.Service the console drives.
type Service interface {
	Command(ctx context.Context, inv commands.Invocation) error
	Click(ctx context.Context, c commands.Click) error
}

// Banner describes the set-up for the start-up text.
type Banner struct {
	MDE      string   // e.g. "simulator" or "real API at https://…"
	State    string   // e.g. "in memory" or "Redis redis://…"
	Machines []string // host names to try, when known (simulator)
}

// Console implements commands.Messenger and commands.Directory by printing
// to a writer. It is safe for concurrent use: background work (status
// following) prints while the user types.
type Console struct {
	channel string

	mu      sync.Mutex
	out     io.Writer
	users   []Identity
	current Identity
	seq     int               // message ts counter
	cards   map[string]string // request id → card ts
	threads map[string]string // card ts → request id
	banner  Banner
}

var (
	_ commands.Messenger = (*Console)(nil)
	_ commands.Directory = (*Console)(nil)
)

// New returns a Console writing to out, posting in channel, acting first
// as users[0]. users must not be empty.
func New(out io.Writer, channel string, users []Identity) *Console {
	c := &Console{
		channel: channel,
		out:     out,
		users:   users,
		cards:   map[string]string{},
		threads: map[string]string{},
	}
	for i := range c.users {
		if c.users[i].Name == "" {
			c.users[i].Name = c.users[i].ID
		}
	}
	c.current = c.users[0]
	return c
}

// Current returns the identity commands are sent as.
func (c *Console) Current() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// PrintBanner prints what the console is connected to and how to use it.
func (c *Console) PrintBanner(b Banner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.banner = b
	var s strings.Builder
	s.WriteString("isolate-bot console: the Slack bot's commands, in this terminal.\n")
	fmt.Fprintf(&s, "  MDE:   %s\n", b.MDE)
	fmt.Fprintf(&s, "  state: %s\n", b.State)
	s.WriteString("  users:")
	for i, u := range c.users {
		if i > 0 {
			s.WriteString(",")
		}
		fmt.Fprintf(&s, " %s (%s", u.Name, u.ID)
		if u.Role != "" {
			s.WriteString(", " + u.Role)
		}
		s.WriteString(")")
	}
	s.WriteString("\n")
	if len(b.Machines) > 0 {
		fmt.Fprintf(&s, "  machines: %s\n", strings.Join(b.Machines, ", "))
	}
	fmt.Fprintf(&s, "You are %s. Type help for the commands; try:\n  /isolate %s full suspicious beaconing\n  as %s\n  approve r-1\n", c.current.Name, firstOr(b.Machines, "<host>"), c.otherName())
	c.write(s.String())
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// otherName is a user other than the current one, for the banner's example.
func (c *Console) otherName() string {
	for _, u := range c.users {
		if u.ID != c.current.ID {
			return u.Name
		}
	}
	return c.current.Name
}

const help = `Commands (you act as the current user):
  /isolate <machine> <full|selective|unmanaged> <comment>   ask to isolate a machine
  /unisolate <machine> <comment>                            ask to release it
  status <machine|r-N>                                      show the latest request and MDE action
  cancel r-N                                                withdraw your pending request
  approve r-N | deny r-N                                    press a card's button
  as <name|user-id>                                         switch user (%s)
  machines                                                  list the simulator's machines
  help                                                      this text
  quit                                                      leave (end of input also leaves, after running work finishes)
`

// Run reads commands line by line from in and sends them to svc as the
// current user, until end of input, "quit" or ctx ends. prompt prints
// "name> " before each line (for a terminal); otherwise each line is echoed
// after it, so a piped script yields a readable transcript. quit reports
// that the user asked to leave (the caller then skips waiting for
// background work).
func (c *Console) Run(ctx context.Context, in io.Reader, svc Service, prompt bool) (quit bool, err error) {
	lines := make(chan string)
	readErr := make(chan error, 1)
	// The reader blocks on in (a terminal may never return); it is left
	// behind when ctx ends, which only happens as the process exits.
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 64*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	trigger := 0
	for {
		cur := c.Current()
		if prompt {
			c.say(cur.Name + "> ")
		}
		var line string
		select {
		case <-ctx.Done():
			return false, nil
		case err := <-readErr:
			if err != nil {
				return false, fmt.Errorf("read commands: %w", err)
			}
			if prompt {
				c.say("\n")
			}
			return false, nil
		case line = <-lines:
		}
		line = strings.TrimSpace(line)
		if !prompt && line != "" {
			c.say(cur.Name + "> " + clean(line) + "\n")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		trigger++
		id := "console-" + strconv.Itoa(trigger)
		if done := c.do(ctx, svc, cur, line, id); done {
			return true, nil
		}
	}
}

// do runs one command line; it reports whether the user asked to quit.
func (c *Console) do(ctx context.Context, svc Service, cur Identity, line, id string) bool {
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	var err error
	switch strings.ToLower(word) {
	case "quit", "exit":
		return true
	case "help", "?":
		names := make([]string, len(c.users))
		for i, u := range c.users {
			names[i] = u.Name
		}
		c.say(fmt.Sprintf(help, strings.Join(names, ", ")))
	case "as":
		c.switchUser(rest)
	case "machines":
		c.mu.Lock()
		ms := c.banner.Machines
		c.mu.Unlock()
		if len(ms) == 0 {
			c.say("(no machine list: the real MDE API is in use; use host names or 40-hex machine ids)\n")
		} else {
			c.say("machines: " + strings.Join(ms, ", ") + "\n")
		}
	case "approve", "deny":
		rid := strings.ToLower(rest)
		c.mu.Lock()
		ts := c.cards[rid]
		c.mu.Unlock()
		err = svc.Click(ctx, commands.Click{RequestID: rid, User: cur.ID, Channel: c.channel, MessageTS: ts,
			Action: commands.Button(strings.ToLower(word)), TriggerID: id})
	case "/isolate", "isolate", "/unisolate", "unisolate":
		err = svc.Command(ctx, commands.Invocation{Command: "/" + strings.TrimPrefix(strings.ToLower(word), "/"),
			Text: rest, User: cur.ID, Channel: c.channel, TriggerID: id, DeliveryID: id})
	case "status", "cancel":
		err = svc.Command(ctx, commands.Invocation{Command: "/isolate", Text: strings.ToLower(word) + " " + rest,
			User: cur.ID, Channel: c.channel, TriggerID: id, DeliveryID: id})
	default:
		c.say("(console) unknown command " + strconv.Quote(clean(word)) + "; type help\n")
	}
	if err != nil {
		c.say("(error) " + clean(err.Error()) + "\n")
	}
	return false
}

func (c *Console) switchUser(who string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range c.users {
		if strings.EqualFold(u.Name, who) || u.ID == who {
			c.current = u
			c.write("(console) you are now " + u.Name + " (" + u.ID + ")\n")
			return
		}
	}
	if isUserID(who) {
		u := Identity{ID: who, Name: who}
		c.users = append(c.users, u)
		c.current = u
		c.write("(console) you are now " + who + "\n")
		return
	}
	names := make([]string, len(c.users))
	for i, u := range c.users {
		names[i] = u.Name
	}
	c.write("(console) unknown user " + strconv.Quote(clean(who)) + "; known: " + strings.Join(names, ", ") + " (or a U…/W… id)\n")
}

func isUserID(s string) bool {
	if len(s) < 3 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, r := range s {
		if !unicode.IsUpper(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// Ephemeral prints m as seen only by user.
func (c *Console) Ephemeral(_ context.Context, channel, user string, m commands.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	who := "(only you) "
	if user != c.current.ID {
		who = "(only @" + c.name(user) + ") "
	}
	c.write(c.message(who, "    ", m))
	return nil
}

// PostCard prints a request card and returns its ts, the root of its thread.
func (c *Console) PostCard(_ context.Context, channel string, card commands.Card) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	ts := fmt.Sprintf("1700000000.%06d", c.seq)
	id := card.Request.ID
	c.cards[id] = ts
	c.threads[ts] = id
	c.write(c.card(card, false))
	return ts, nil
}

// UpdateCard prints the card again in its new state.
func (c *Console) UpdateCard(_ context.Context, channel, ts string, card commands.Card) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if card.Request.ID != "" {
		c.cards[card.Request.ID] = ts
		c.threads[ts] = card.Request.ID
	}
	c.write(c.card(card, true))
	return nil
}

// Reply prints m in the thread of the card at threadTS.
func (c *Console) Reply(_ context.Context, channel, threadTS string, m commands.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.threads[threadTS]
	if id == "" {
		id = "thread " + threadTS
	}
	c.write(c.message("  └ "+id+" ", "      ", m))
	return nil
}

// GroupMembers: the console has no user groups.
func (c *Console) GroupMembers(_ context.Context, groupID string) ([]string, error) {
	return nil, errors.New("user groups (" + groupID + ") are not available in the console; list user ids in ALLOWED_USER_IDS/APPROVER_USER_IDS")
}

// name is the display name of a user id (@alice), else the id itself.
func (c *Console) name(id string) string {
	for _, u := range c.users {
		if u.ID == id {
			return u.Name
		}
	}
	return clean(id)
}

// write writes s; the caller holds c.mu.
func (c *Console) write(s string) { _, _ = io.WriteString(c.out, s) }

// say writes s under c.mu, for callers that do not hold it.
func (c *Console) say(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write(s)
}
