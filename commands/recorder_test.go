package commands

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/soc/isolate-bot/internal/mock"
)

// recorder records everything a Service tells the chat. Its messenger is a
// mock.Messenger whose functions record; a test replaces one of them to
// inject a failure or a race (see TestNotInChannelCancels).
type recorder struct {
	mu         sync.Mutex
	ephemerals []sent
	cards      []Card
	updates    []Card
	replies    []sent
	ts         int
}

type sent struct {
	Channel, User, Thread string
	M                     Message
}

func (r *recorder) messenger() *mock.Messenger[Message, Card] {
	return &mock.Messenger[Message, Card]{
		EphemeralFn: func(_ context.Context, ch, user string, m Message) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.ephemerals = append(r.ephemerals, sent{Channel: ch, User: user, M: m})
			return nil
		},
		PostCardFn: func(_ context.Context, ch string, c Card) (string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.ts++
			r.cards = append(r.cards, c)
			return fmt.Sprintf("1764406800.%06d", r.ts), nil
		},
		UpdateCardFn: func(_ context.Context, ch, ts string, c Card) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.updates = append(r.updates, c)
			return nil
		},
		ReplyFn: func(_ context.Context, ch, ts string, m Message) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.replies = append(r.replies, sent{Channel: ch, Thread: ts, M: m})
			return nil
		},
	}
}

// text flattens a message for assertions.
func text(m Message) string {
	var b strings.Builder
	for _, s := range m.Spans {
		switch s.Kind {
		case User:
			b.WriteString("@" + s.Text)
		case Thread:
			b.WriteString("<thread " + s.TS + "|" + s.Text + ">")
		default:
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

func (r *recorder) lastEphemeral(t *testing.T, user string) Message {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.ephemerals) - 1; i >= 0; i-- {
		if r.ephemerals[i].User == user {
			return r.ephemerals[i].M
		}
	}
	t.Fatalf("no ephemeral message to %s", user)
	return Message{}
}

func (r *recorder) replyTexts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.replies {
		out = append(out, text(s.M))
	}
	return out
}

func (r *recorder) hasReply(sub string) bool {
	for _, s := range r.replyTexts() {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// replyActions counts the thread replies that carry action id.
func (r *recorder) replyActions(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.replies {
		if s.M.Action != nil && s.M.Action.ID == id {
			n++
		}
	}
	return n
}

func (r *recorder) cardCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cards)
}

func (r *recorder) cardUpdates() []Card {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Card(nil), r.updates...)
}
