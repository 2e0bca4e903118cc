package fakeslack

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Message is a message in a channel: a root message or a thread reply.
// Methods hand out copies; Blocks is validated Block Kit JSON (compact),
// nil when the message has none.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // "" for a root message
	User     string // the bot's user id for messages the bot posted
	Text     string
	Blocks   json.RawMessage
	// Form holds the fields of the request that produced the current
	// version (link_names, parse, unfurl_links, …), token excluded.
	Form url.Values
	// Via is "chat.postMessage", or "response_url" for an in_channel reply.
	Via      string
	PostedAt time.Time
	// Updates are the earlier versions, oldest first: each chat.update (or
	// replace_original) pushes the version it replaces.
	Updates []Update
	Deleted bool // delete_original through a response_url
}

// Update is an earlier version of a Message.
type Update struct {
	Text   string
	Blocks json.RawMessage
	Form   url.Values
	At     time.Time // when it was replaced
}

// Ephemeral is a message only User sees: from chat.postEphemeral, from an
// ephemeral response_url post, or from a slash command's ack payload.
type Ephemeral struct {
	Channel  string
	User     string
	TS       string
	ThreadTS string
	Text     string
	Blocks   json.RawMessage
	Form     url.Values // chat.postEphemeral only, token excluded
	Via      string     // "chat.postEphemeral", "response_url" or "ack"
	At       time.Time
}

// ResponsePost is one POST to a response_url.
type ResponsePost struct {
	URL        string
	EnvelopeID string // the envelope that carried the response_url
	Body       json.RawMessage
	// Decoded fields of Body.
	Text            string
	Blocks          json.RawMessage
	ResponseType    string // "ephemeral" (also when empty) or "in_channel"
	ReplaceOriginal bool
	DeleteOriginal  bool
	ThreadTS        string
	At              time.Time
	Status          int // HTTP status answered
}

// respURL is the state of one response_url.
type respURL struct {
	envelopeID string
	user       string
	channel    string
	messageTS  string // the clicked message, for replace/delete_original
	uses       int
}

// Slack lets a response_url be used five times.
const maxResponseURLUses = 5

func (s *Server) newResponseURLLocked(envelopeID, user, channel, messageTS string) string {
	path := "/response/" + strings.ReplaceAll(envelopeID, "-", "")
	s.respURLs[path] = &respURL{envelopeID: envelopeID, user: user, channel: channel, messageTS: messageTS}
	return s.srv.URL + path
}

// handleResponseURL records posts to a response_url and applies them the way
// Slack does: ephemeral to the user, in_channel as a message, or replacing /
// deleting the message whose button was clicked.
func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	if !s.hang(r, "response_url") {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	call := Call{Method: "response_url", Body: body, Form: url.Values{}, Auth: "none", At: time.Now()}
	reply, faulted := s.takeFault("response_url")
	if !faulted {
		reply = s.responsePost(r.URL.Path, body)
	}
	call.Status = reply.status
	call.Error, _ = reply.body["error"].(string)
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.notifyLocked()
	s.mu.Unlock()
	writeReply(w, reply)
}

func (s *Server) responsePost(path string, body []byte) apiReply {
	var in struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		ThreadTS        string          `json:"thread_ts"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return apiReply{status: http.StatusBadRequest, retryAfter: -1, body: map[string]any{"ok": false, "error": "invalid_payload"}}
	}
	var blocks json.RawMessage
	if len(in.Blocks) > 0 && string(in.Blocks) != "null" {
		b, problems := validateBlocks(in.Blocks)
		if len(problems) > 0 {
			return apiReply{status: http.StatusBadRequest, retryAfter: -1,
				body: map[string]any{"ok": false, "error": "invalid_blocks", "errors": problems}}
		}
		blocks = b
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ru := s.respURLs[path]
	if ru == nil {
		return apiReply{status: http.StatusNotFound, retryAfter: -1, body: map[string]any{"ok": false, "error": "expired_url"}}
	}
	post := ResponsePost{URL: s.srv.URL + path, EnvelopeID: ru.envelopeID, Body: append(json.RawMessage(nil), body...),
		Text: in.Text, Blocks: blocks, ResponseType: in.ResponseType, ReplaceOriginal: in.ReplaceOriginal,
		DeleteOriginal: in.DeleteOriginal, ThreadTS: in.ThreadTS, At: now, Status: http.StatusOK}
	ru.uses++
	if ru.uses > maxResponseURLUses {
		post.Status = http.StatusNotFound
		s.responses = append(s.responses, post)
		s.notifyLocked()
		return apiReply{status: http.StatusNotFound, retryAfter: -1, body: map[string]any{"ok": false, "error": "used_url"}}
	}
	s.responses = append(s.responses, post)
	defer s.notifyLocked()
	switch {
	case in.DeleteOriginal && ru.messageTS != "":
		if m := s.findMessageLocked(ru.channel, ru.messageTS); m != nil {
			m.Deleted = true
		}
	case in.ReplaceOriginal && ru.messageTS != "":
		if m := s.findMessageLocked(ru.channel, ru.messageTS); m != nil {
			m.Updates = append(m.Updates, Update{Text: m.Text, Blocks: m.Blocks, Form: m.Form, At: now})
			m.Text, m.Blocks, m.Form = in.Text, blocks, nil
		}
	case in.ResponseType == "in_channel":
		s.messages[ru.channel] = append(s.messages[ru.channel], &Message{
			Channel: ru.channel, TS: s.tsLocked(), ThreadTS: in.ThreadTS, User: s.opts.BotUserID,
			Text: in.Text, Blocks: blocks, Via: "response_url", PostedAt: now})
	default:
		s.ephemeral = append(s.ephemeral, Ephemeral{Channel: ru.channel, User: ru.user, TS: s.tsLocked(),
			ThreadTS: in.ThreadTS, Text: in.Text, Blocks: blocks, Via: "response_url", At: now})
	}
	return ok(nil)
}

func copyMessage(m *Message) Message {
	c := *m
	c.Updates = append([]Update(nil), m.Updates...)
	return c
}

// Messages returns the channel's messages, roots and replies, in the order
// they were posted.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messagesLocked(channel)
}

func (s *Server) messagesLocked(channel string) []Message {
	var out []Message
	for _, m := range s.messages[channel] {
		out = append(out, copyMessage(m))
	}
	return out
}

// Message returns the message with ts in channel.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessageLocked(channel, ts)
	if m == nil {
		return Message{}, false
	}
	return copyMessage(m), true
}

// WaitMessages waits until pred holds for the channel's messages and
// returns them.
func (s *Server) WaitMessages(channel string, pred func([]Message) bool, timeout time.Duration) ([]Message, error) {
	var out []Message
	err := s.waitFor(timeout, "messages in "+channel, func() bool {
		out = s.messagesLocked(channel)
		return pred(out)
	})
	return out, err
}

// Thread returns the replies in the thread rooted at ts, in order (the root
// itself is not included).
func (s *Server) Thread(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.threadLocked(channel, ts)
}

func (s *Server) threadLocked(channel, ts string) []Message {
	var out []Message
	for _, m := range s.messages[channel] {
		if m.ThreadTS == ts && m.TS != ts {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// WaitThread waits until pred holds for the replies under ts and returns
// them.
func (s *Server) WaitThread(channel, ts string, pred func([]Message) bool, timeout time.Duration) ([]Message, error) {
	var out []Message
	err := s.waitFor(timeout, "thread "+channel+"/"+ts, func() bool {
		out = s.threadLocked(channel, ts)
		return pred(out)
	})
	return out, err
}

// Ephemerals returns what was shown to user alone, oldest first.
func (s *Server) Ephemerals(user string) []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ephemeralsLocked(user)
}

func (s *Server) ephemeralsLocked(user string) []Ephemeral {
	var out []Ephemeral
	for _, e := range s.ephemeral {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out
}

// WaitEphemeral waits until pred holds for user's ephemerals and returns
// them.
func (s *Server) WaitEphemeral(user string, pred func([]Ephemeral) bool, timeout time.Duration) ([]Ephemeral, error) {
	var out []Ephemeral
	err := s.waitFor(timeout, "ephemerals for "+user, func() bool {
		out = s.ephemeralsLocked(user)
		return pred(out)
	})
	return out, err
}

// ResponsePosts returns every post to a response_url, oldest first.
func (s *Server) ResponsePosts() []ResponsePost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ResponsePost(nil), s.responses...)
}

// WaitResponsePosts waits until pred holds for the response_url posts.
func (s *Server) WaitResponsePosts(pred func([]ResponsePost) bool, timeout time.Duration) ([]ResponsePost, error) {
	var out []ResponsePost
	err := s.waitFor(timeout, "response_url posts", func() bool {
		out = append(out[:0], s.responses...)
		return pred(out)
	})
	return append([]ResponsePost(nil), out...), err
}
