package fakeslack

import (
	"encoding/json"
	"net/http"
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
