package fakeslack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Envelope is a Socket Mode envelope the fake sent (or is about to send).
type Envelope struct {
	ID          string
	Type        string // "slash_commands", "interactive", …
	Payload     json.RawMessage
	TriggerID   string
	ResponseURL string
	// SentAt is when it was first written to a connection; zero while it
	// waits for one (no live connection).
	SentAt     time.Time
	Deliveries []Delivery
	Acked      bool
}

// Delivery is one write of an envelope to a connection.
type Delivery struct {
	ConnID       int
	At           time.Time
	RetryAttempt int // 0, then 1 for the single redelivery
}

// Ack is an acknowledgement received on any connection.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage // nil when the client sent none
	ConnID     int             // connection it arrived on
	At         time.Time
	// Latency is from the envelope's first send to this ack; 0 for an
	// unknown envelope.
	Latency   time.Duration
	Known     bool // the envelope id is one the fake sent
	Duplicate bool // the envelope had already been acked
}

// ConnStat describes one WebSocket connection, live or gone.
type ConnStat struct {
	ID        int // 1, 2, … in order of acceptance
	Live      bool
	Draining  bool // sent "disconnect"; gets no more envelopes
	OpenedAt  time.Time
	ClosedAt  time.Time
	Delivered int // envelopes written to it, redeliveries included
	Acks      int // acks received on it
	Pongs     int // PONGs received for our PINGs
	BadFrames int // frames that were not acks
}

type conn struct {
	id  int
	ws  *websocket.Conn
	wmu sync.Mutex // one writer at a time (gorilla allows WriteControl concurrently)
	ConnStat
	ready bool          // hello sent
	gone  chan struct{} // closed when the reader has exited
}

type envelope struct {
	Envelope
	accepts bool
	user    string
	channel string
	acked   chan struct{} // closed on the first ack
	pending int           // retry_attempt of the delivery waiting in the queue
}

const writeTimeout = 2 * time.Second

func (c *conn) write(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

// handleLink is the WebSocket endpoint apps.connections.open points to.
func (s *Server) handleLink(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket] && !s.closed
	delete(s.tickets, ticket) // a ticket is good for one connection
	s.mu.Unlock()
	if !valid {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}
	c := &conn{ws: ws, gone: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	c.id = len(s.conns) + 1
	c.ID, c.Live, c.OpenedAt = c.id, true, time.Now()
	s.conns = append(s.conns, c)
	n := s.liveLocked()
	s.wg.Add(2)
	s.mu.Unlock()

	ws.SetPongHandler(func(string) error {
		s.mu.Lock()
		c.Pongs++
		s.notifyLocked()
		s.mu.Unlock()
		return nil
	})
	go s.readLoop(c)
	go s.pingLoop(c)

	// hello first, so no envelope can precede it; same shape as slack-go's fixture.
	err = c.write(map[string]any{
		"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "fakeslack", "build_number": 1, "approximate_connection_time": 3600},
		"connection_info": map[string]any{"app_id": s.opts.AppID},
	})
	if err != nil {
		s.markClosed(c)
		return
	}
	s.mu.Lock()
	c.ready = true
	queued := s.queue
	s.queue = nil
	s.notifyLocked()
	s.mu.Unlock()
	for _, e := range queued {
		s.deliver(e, 0, e.pending)
	}
}

func (s *Server) readLoop(c *conn) {
	defer s.wg.Done()
	defer close(c.gone)
	defer s.markClosed(c)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		s.recordAck(c, data)
	}
}

func (s *Server) pingLoop(c *conn) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, []byte("fakeslack"), time.Now().Add(writeTimeout)); err != nil {
				_ = c.ws.Close()
				return
			}
		case <-c.gone:
			return
		case <-s.done:
			return
		}
	}
}

// markClosed takes c out of rotation and closes its socket.
func (s *Server) markClosed(c *conn) {
	s.mu.Lock()
	if c.Live {
		c.Live = false
		c.ClosedAt = time.Now()
		s.notifyLocked()
	}
	s.mu.Unlock()
	_ = c.ws.Close()
}

func (s *Server) recordAck(c *conn, data []byte) {
	now := time.Now()
	var in struct {
		EnvelopeID string          `json:"envelope_id"`
		Payload    json.RawMessage `json:"payload"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	if json.Unmarshal(data, &in) != nil || in.EnvelopeID == "" {
		c.BadFrames++
		return
	}
	c.Acks++
	a := Ack{EnvelopeID: in.EnvelopeID, Payload: in.Payload, ConnID: c.id, At: now}
	e := s.envByID[in.EnvelopeID]
	if e != nil {
		a.Known = true
		a.Duplicate = e.Acked
		if !e.SentAt.IsZero() {
			a.Latency = now.Sub(e.SentAt)
		}
		if !e.Acked {
			e.Acked = true
			close(e.acked)
			s.ackPayloadLocked(e, in.Payload, now)
		}
	}
	s.acks = append(s.acks, a)
}

// ackPayloadLocked shows a slash command's ack payload (its "immediate
// response") the way Slack does.
func (s *Server) ackPayloadLocked(e *envelope, payload json.RawMessage, now time.Time) {
	if e.Type != "slash_commands" || len(payload) == 0 {
		return
	}
	var p struct {
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
		ResponseType string          `json:"response_type"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return
	}
	var blocks json.RawMessage
	if len(p.Blocks) > 0 && string(p.Blocks) != "null" {
		b, problems := validateBlocks(p.Blocks)
		if len(problems) > 0 {
			s.t.Errorf("fakeslack: ack of %s has invalid blocks: %v", e.ID, problems)
			return
		}
		blocks = b
	}
	if p.Text == "" && len(blocks) == 0 {
		return
	}
	if p.ResponseType == "in_channel" {
		s.messages[e.channel] = append(s.messages[e.channel], &Message{Channel: e.channel, TS: s.tsLocked(),
			User: e.user, Text: p.Text, Blocks: blocks, Via: "ack", PostedAt: now})
		return
	}
	s.ephemeral = append(s.ephemeral, Ephemeral{Channel: e.channel, User: e.user, TS: s.tsLocked(),
		Text: p.Text, Blocks: blocks, Via: "ack", At: now})
}

// liveLocked counts open connections not told to disconnect, including
// one whose hello is not sent yet (for hello's num_connections).
func (s *Server) liveLocked() int {
	n := 0
	for _, c := range s.conns {
		if c.Live && !c.Draining {
			n++
		}
	}
	return n
}

// pickLocked chooses the connection for the next envelope: round-robin
// over ready connections, avoiding connection `avoid` when another exists.
func (s *Server) pickLocked(avoid int) *conn {
	var ok []*conn
	for _, c := range s.conns {
		if c.Live && !c.Draining && c.ready {
			ok = append(ok, c)
		}
	}
	if len(ok) > 1 && avoid != 0 {
		others := ok[:0:0]
		for _, c := range ok {
			if c.id != avoid {
				others = append(others, c)
			}
		}
		if len(others) > 0 {
			ok = others
		}
	}
	if len(ok) == 0 {
		return nil
	}
	for _, c := range ok {
		if c.id > s.rr {
			s.rr = c.id
			return c
		}
	}
	s.rr = ok[0].id
	return ok[0]
}

// deliver writes e with retry_attempt `attempt` to a live connection, or
// queues it until one connects.
func (s *Server) deliver(e *envelope, avoid, attempt int) {
	for {
		s.mu.Lock()
		if s.closed || e.Acked {
			s.mu.Unlock()
			return
		}
		c := s.pickLocked(avoid)
		if c == nil {
			e.pending = attempt
			s.queue = append(s.queue, e)
			s.mu.Unlock()
			return
		}
		msg := map[string]any{
			"envelope_id": e.ID, "type": e.Type, "accepts_response_payload": e.accepts,
			"payload": e.Payload, "retry_attempt": attempt, "retry_reason": "",
		}
		if attempt > 0 {
			msg["retry_reason"] = "timeout"
		}
		// Record before writing so that an ack racing the write finds it.
		d := Delivery{ConnID: c.id, At: time.Now(), RetryAttempt: attempt}
		e.Deliveries = append(e.Deliveries, d)
		first := e.SentAt.IsZero()
		if first {
			e.SentAt = d.At
		}
		s.mu.Unlock()

		err := c.write(msg)

		s.mu.Lock()
		if err != nil {
			e.Deliveries = e.Deliveries[:len(e.Deliveries)-1]
			if first {
				e.SentAt = time.Time{}
			}
			s.mu.Unlock()
			s.markClosed(c)
			continue
		}
		c.Delivered++
		if attempt == 0 && !s.closed {
			s.wg.Add(1)
			go s.redeliverLater(e, c.id)
		}
		s.notifyLocked()
		s.mu.Unlock()
		return
	}
}

// redeliverLater sends e once more, preferably on another connection, if
// it is not acked within RedeliveryTimeout.
func (s *Server) redeliverLater(e *envelope, firstConn int) {
	defer s.wg.Done()
	t := time.NewTimer(s.opts.RedeliveryTimeout)
	defer t.Stop()
	select {
	case <-e.acked:
	case <-s.done:
	case <-t.C:
		s.deliver(e, firstConn, 1)
	}
}

// send registers a new envelope and delivers it.
func (s *Server) send(e *envelope) Envelope {
	s.mu.Lock()
	e.acked = make(chan struct{})
	s.envelopes = append(s.envelopes, e)
	s.envByID[e.ID] = e
	s.mu.Unlock()
	s.deliver(e, 0, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyEnvelope(e)
}

func copyEnvelope(e *envelope) Envelope {
	c := e.Envelope
	c.Deliveries = append([]Delivery(nil), e.Deliveries...)
	return c
}

// idsLocked returns a fresh envelope id (UUID-shaped) and trigger id.
func (s *Server) idsLocked() (envelopeID, triggerID string) {
	n := s.nextLocked()
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n*7919),
		fmt.Sprintf("%d.%d.%032x", 1000000+n, 26768298162, n*104729)
}

// SlashCommand sends a slash_commands envelope, as if user typed
// "command text" in channel, and returns it. command includes the leading
// "/". The payload carries a unique trigger_id and a response_url on the
// fake. If no connection is live, it is sent when one connects.
func (s *Server) SlashCommand(user, channel, command, text string) Envelope {
	s.mu.Lock()
	id, trigger := s.idsLocked()
	resp := s.newResponseURLLocked(id, user, channel, "")
	payload, _ := json.Marshal(map[string]any{
		"token": "fake-verification-token", "team_id": s.opts.TeamID, "team_domain": "fake",
		"channel_id": channel, "channel_name": channel, "user_id": user, "user_name": s.userNameLocked(user),
		"command": command, "text": text, "api_app_id": s.opts.AppID, "is_enterprise_install": "false",
		"response_url": resp, "trigger_id": trigger,
	})
	s.mu.Unlock()
	return s.send(&envelope{Envelope: Envelope{ID: id, Type: "slash_commands", Payload: payload,
		TriggerID: trigger, ResponseURL: resp}, accepts: true, user: user, channel: channel})
}

func (s *Server) userNameLocked(id string) string {
	if u, ok := s.opts.Users[id]; ok && u.Name != "" {
		return u.Name
	}
	return strings.ToLower(id)
}

// Click sends a block_actions interactive envelope, as if user clicked the
// button actionID in block blockID of the bot's message messageTS in
// channel. The payload's message holds that message's current blocks, and
// the action carries block_id, so slack-go routes it to
// HandleInteractionBlockAction. value is sent as given (it need not match
// the button). Clicking a message that does not exist fails the test and
// returns a zero Envelope.
func (s *Server) Click(user, channel, messageTS, actionID, blockID, value string) Envelope {
	s.mu.Lock()
	m := s.findMessageLocked(channel, messageTS)
	if m == nil || m.Deleted {
		s.mu.Unlock()
		s.t.Errorf("fakeslack: Click on %s/%s: no such message", channel, messageTS)
		return Envelope{}
	}
	id, trigger := s.idsLocked()
	resp := s.newResponseURLLocked(id, user, channel, messageTS)
	action := map[string]any{
		"type": "button", "action_id": actionID, "block_id": blockID, "value": value,
		"text":      map[string]any{"type": "plain_text", "text": actionID, "emoji": true},
		"action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), time.Now().Nanosecond()/1000),
	}
	for _, b := range buttons(m.Blocks) {
		if b.ActionID == actionID && b.BlockID == blockID {
			action["text"] = map[string]any{"type": "plain_text", "text": b.Text, "emoji": true}
			if b.Style != "" {
				action["style"] = b.Style
			}
		}
	}
	container := map[string]any{"type": "message", "message_ts": messageTS, "channel_id": channel, "is_ephemeral": false}
	if m.ThreadTS != "" {
		container["thread_ts"] = m.ThreadTS
	}
	team := map[string]any{"id": s.opts.TeamID, "domain": "fake"}
	name := s.userNameLocked(user)
	payload, err := json.Marshal(map[string]any{
		"type": "block_actions", "api_app_id": s.opts.AppID, "token": "fake-verification-token",
		"team": team, "user": map[string]any{"id": user, "username": name, "name": name, "team_id": s.opts.TeamID},
		"container": container, "channel": map[string]any{"id": channel, "name": channel},
		"message": s.messageJSONLocked(m), "state": map[string]any{"values": map[string]any{}},
		"trigger_id": trigger, "response_url": resp, "actions": []any{action},
	})
	s.mu.Unlock()
	if err != nil {
		s.t.Errorf("fakeslack: Click: %v", err)
		return Envelope{}
	}
	return s.send(&envelope{Envelope: Envelope{ID: id, Type: "interactive", Payload: payload,
		TriggerID: trigger, ResponseURL: resp}, accepts: true, user: user, channel: channel})
}

// ClickButton clicks the button actionID of message messageTS in channel,
// taking block_id and value from the message's current blocks. A missing
// message or button fails the test and returns a zero Envelope.
func (s *Server) ClickButton(user, channel, messageTS, actionID string) Envelope {
	m, found := s.Message(channel, messageTS)
	if !found {
		s.t.Errorf("fakeslack: ClickButton on %s/%s: no such message", channel, messageTS)
		return Envelope{}
	}
	b, found := m.Button(actionID)
	if !found {
		s.t.Errorf("fakeslack: ClickButton: message %s/%s has no button %q (buttons: %+v)", channel, messageTS, actionID, m.Buttons())
		return Envelope{}
	}
	return s.Click(user, channel, messageTS, b.ActionID, b.BlockID, b.Value)
}

// SendEnvelope sends an arbitrary envelope (e.g. events_api, or a malformed
// payload to test the bot's robustness) and returns it.
func (s *Server) SendEnvelope(typ string, payload json.RawMessage, acceptsResponsePayload bool) Envelope {
	s.mu.Lock()
	id, _ := s.idsLocked()
	s.mu.Unlock()
	return s.send(&envelope{Envelope: Envelope{ID: id, Type: typ, Payload: payload}, accepts: acceptsResponsePayload})
}

// Disconnect sends {"type":"disconnect","reason":reason} on every live
// connection, as Slack does before a refresh. Those connections get no more
// envelopes and are closed after Options.DisconnectGrace if the client has
// not closed them.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	var targets []*conn
	for _, c := range s.conns {
		if c.Live && !c.Draining {
			c.Draining = true
			targets = append(targets, c)
		}
	}
	if !s.closed {
		s.wg.Add(len(targets))
	} else {
		targets = nil
	}
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range targets {
		_ = c.write(map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "fakeslack"}})
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(s.opts.DisconnectGrace)
			defer t.Stop()
			select {
			case <-t.C:
				s.markClosed(c)
			case <-c.gone:
			case <-s.done:
			}
		}()
	}
}

// DropConnections closes every connection abruptly (no close frame), like a
// network failure.
func (s *Server) DropConnections() {
	s.mu.Lock()
	var targets []*conn
	for _, c := range s.conns {
		if c.Live {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	for _, c := range targets {
		s.markClosed(c)
	}
}

// Connections returns the number of live connections that receive
// envelopes (hello sent, not closed, not told to disconnect).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyLocked()
}

func (s *Server) readyLocked() int {
	n := 0
	for _, c := range s.conns {
		if c.Live && !c.Draining && c.ready {
			n++
		}
	}
	return n
}

// WaitConnections waits until exactly n connections receive envelopes.
func (s *Server) WaitConnections(n int, timeout time.Duration) error {
	return s.waitFor(timeout, fmt.Sprintf("%d live connections", n), func() bool {
		return s.readyLocked() == n
	})
}

// ConnectionsOpened returns how many connections were ever accepted.
func (s *Server) ConnectionsOpened() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// WaitConnectionsOpened waits until at least n connections were ever
// accepted (e.g. n = before+1 after Disconnect proves a reconnect).
func (s *Server) WaitConnectionsOpened(n int, timeout time.Duration) error {
	return s.waitFor(timeout, fmt.Sprintf("%d connections opened", n), func() bool {
		return len(s.conns) >= n
	})
}

// ConnStats describes every connection ever accepted, by id. Delivered is
// the count of envelopes delivered per connection.
func (s *Server) ConnStats() []ConnStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnStat, len(s.conns))
	for i, c := range s.conns {
		out[i] = c.ConnStat
	}
	return out
}

// Envelopes returns every envelope sent, oldest first.
func (s *Server) Envelopes() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Envelope, len(s.envelopes))
	for i, e := range s.envelopes {
		out[i] = copyEnvelope(e)
	}
	return out
}

// WaitDeliveries waits until envelope id was written to connections at
// least n times (n = 2: it was redelivered).
func (s *Server) WaitDeliveries(id string, n int, timeout time.Duration) (Envelope, error) {
	var out Envelope
	err := s.waitFor(timeout, fmt.Sprintf("%d deliveries of %s", n, id), func() bool {
		e := s.envByID[id]
		if e == nil {
			return false
		}
		out = copyEnvelope(e)
		return len(e.Deliveries) >= n
	})
	return out, err
}

// Acks returns every ack received, in arrival order (duplicates included).
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.acks...)
}

// WaitAck waits for the first ack of envelopeID, on any connection.
func (s *Server) WaitAck(envelopeID string, timeout time.Duration) (Ack, error) {
	var out Ack
	err := s.waitFor(timeout, "ack of "+envelopeID, func() bool {
		for _, a := range s.acks {
			if a.EnvelopeID == envelopeID {
				out = a
				return true
			}
		}
		return false
	})
	return out, err
}
