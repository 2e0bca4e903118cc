package fakeslack

import (
	"fmt"
	"time"
)

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
