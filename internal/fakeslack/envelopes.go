package fakeslack

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

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
