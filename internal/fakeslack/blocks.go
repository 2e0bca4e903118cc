package fakeslack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// validateBlocks checks raw the way Slack would before accepting a message:
// it must decode with slack-go (which is what the bot will receive back in
// interactive payloads) and respect the Block Kit limits the bot is likely
// to hit. It returns the compacted JSON, or problems in Slack's
// "… [json-pointer:/blocks/0/text/text]" style.
func validateBlocks(raw []byte) (json.RawMessage, []string) {
	var generic []map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, []string{"blocks must be a JSON array of objects: " + err.Error()}
	}
	var typed slack.Blocks
	if err := json.Unmarshal(raw, &typed); err != nil {
		return nil, []string{"slack-go cannot decode blocks: " + err.Error()}
	}
	v := &blockValidator{}
	v.blocks(generic)
	if len(v.problems) > 0 {
		return nil, v.problems
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, []string{err.Error()}
	}
	return buf.Bytes(), nil
}

type blockValidator struct{ problems []string }

func (v *blockValidator) addf(ptr, format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...)+" [json-pointer:"+ptr+"]")
}

func (v *blockValidator) maxLen(ptr string, s any, limit int) {
	str, _ := s.(string)
	if n := utf8.RuneCountInString(str); n > limit {
		v.addf(ptr, "must be less than %d characters", limit+1)
	}
}

// text checks a composition text object; plainOnly for places where
// mrkdwn is not allowed (headers, buttons, confirm dialogs).
func (v *blockValidator) text(ptr string, obj any, limit int, plainOnly, required bool) {
	t, isObj := obj.(map[string]any)
	if !isObj {
		if required || obj != nil {
			v.addf(ptr, "must be a text object")
		}
		return
	}
	switch t["type"] {
	case "plain_text":
	case "mrkdwn":
		if plainOnly {
			v.addf(ptr+"/type", "must be plain_text")
		}
	default:
		v.addf(ptr+"/type", "must be plain_text or mrkdwn")
	}
	if s, _ := t["text"].(string); s == "" {
		v.addf(ptr+"/text", "must be at least 1 character")
	}
	v.maxLen(ptr+"/text", t["text"], limit)
}

func (v *blockValidator) blocks(bs []map[string]any) {
	if len(bs) > 50 {
		v.addf("/blocks", "no more than 50 items allowed")
	}
	blockIDs := map[string]bool{}
	for i, b := range bs {
		ptr := fmt.Sprintf("/blocks/%d", i)
		if id, has := b["block_id"]; has {
			s, _ := id.(string)
			if s == "" {
				v.addf(ptr+"/block_id", "must be a non-empty string")
			}
			v.maxLen(ptr+"/block_id", s, 255)
			if blockIDs[s] {
				v.addf(ptr+"/block_id", "duplicate block_id %q", s)
			}
			blockIDs[s] = true
		}
		switch b["type"] {
		case "section":
			fields, _ := b["fields"].([]any)
			if b["text"] == nil && len(fields) == 0 {
				v.addf(ptr, "must have text or fields")
			}
			v.text(ptr+"/text", b["text"], 3000, false, false)
			if len(fields) > 10 {
				v.addf(ptr+"/fields", "no more than 10 items allowed")
			}
			for j, f := range fields {
				v.text(fmt.Sprintf("%s/fields/%d", ptr, j), f, 2000, false, true)
			}
			if acc, has := b["accessory"]; has {
				v.element(ptr+"/accessory", acc)
			}
		case "header":
			v.text(ptr+"/text", b["text"], 150, true, true)
		case "actions":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 25 {
				v.addf(ptr+"/elements", "must have 1 to 25 items")
			}
			actionIDs := map[string]bool{}
			for j, e := range els {
				ep := fmt.Sprintf("%s/elements/%d", ptr, j)
				v.element(ep, e)
				if m, _ := e.(map[string]any); m != nil {
					if id, _ := m["action_id"].(string); id != "" {
						if actionIDs[id] {
							v.addf(ep+"/action_id", "duplicate action_id %q", id)
						}
						actionIDs[id] = true
					}
				}
			}
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				v.addf(ptr+"/elements", "must have 1 to 10 items")
			}
			for j, e := range els {
				if m, _ := e.(map[string]any); m != nil && m["type"] != "image" {
					v.text(fmt.Sprintf("%s/elements/%d", ptr, j), m, 3000, false, true)
				}
			}
		case "divider", "image", "rich_text", "input", "markdown":
			// Not used by the bot; accepted as long as slack-go decodes them.
		default:
			v.addf(ptr+"/type", "unsupported block type %v", b["type"])
		}
	}
}

func (v *blockValidator) element(ptr string, e any) {
	m, _ := e.(map[string]any)
	if m == nil {
		v.addf(ptr, "must be an object")
		return
	}
	if id, has := m["action_id"]; has {
		s, _ := id.(string)
		v.maxLen(ptr+"/action_id", s, 255)
	}
	if m["type"] != "button" {
		return // other elements are not validated in detail
	}
	v.text(ptr+"/text", m["text"], 75, true, true)
	v.maxLen(ptr+"/value", m["value"], 2000)
	v.maxLen(ptr+"/url", m["url"], 3000)
	switch m["style"] {
	case nil, "primary", "danger":
	default:
		v.addf(ptr+"/style", "must be primary or danger")
	}
	if c, has := m["confirm"]; has {
		cm, _ := c.(map[string]any)
		if cm == nil {
			v.addf(ptr+"/confirm", "must be an object")
			return
		}
		v.text(ptr+"/confirm/title", cm["title"], 100, true, true)
		v.text(ptr+"/confirm/text", cm["text"], 300, false, true)
		v.text(ptr+"/confirm/confirm", cm["confirm"], 30, true, true)
		v.text(ptr+"/confirm/deny", cm["deny"], 30, true, true)
	}
}

// Button is an interactive button in a message's blocks.
type Button struct {
	BlockID  string
	ActionID string
	Value    string
	Text     string
	Style    string
	URL      string
	Confirm  bool // has a confirmation dialog
}

// Buttons returns the message's buttons (in actions blocks and section
// accessories) in block order.
func (m Message) Buttons() []Button { return buttons(m.Blocks) }

// Button returns the button with actionID, if the message has one.
func (m Message) Button(actionID string) (Button, bool) {
	for _, b := range m.Buttons() {
		if b.ActionID == actionID {
			return b, true
		}
	}
	return Button{}, false
}

func buttons(raw json.RawMessage) []Button {
	var bs []struct {
		Type      string            `json:"type"`
		BlockID   string            `json:"block_id"`
		Elements  []json.RawMessage `json:"elements"`
		Accessory json.RawMessage   `json:"accessory"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &bs) != nil {
		return nil
	}
	var out []Button
	add := func(blockID string, el json.RawMessage) {
		var e struct {
			Type     string `json:"type"`
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			Style    string `json:"style"`
			URL      string `json:"url"`
			Text     struct{ Text string }
			Confirm  json.RawMessage `json:"confirm"`
		}
		if json.Unmarshal(el, &e) == nil && e.Type == "button" {
			out = append(out, Button{BlockID: blockID, ActionID: e.ActionID, Value: e.Value,
				Text: e.Text.Text, Style: e.Style, URL: e.URL, Confirm: len(e.Confirm) > 0})
		}
	}
	for _, b := range bs {
		for _, el := range b.Elements {
			add(b.BlockID, el)
		}
		if len(b.Accessory) > 0 {
			add(b.BlockID, b.Accessory)
		}
	}
	return out
}

// AllText returns the message's fallback text and every "text" string in
// its blocks, joined by newlines, as written (still escaped), for
// assertions like strings.Contains(m.AllText(), "host-42").
func (m Message) AllText() string { return allText(m.Text, m.Blocks) }

// AllText is Message.AllText for an ephemeral.
func (e Ephemeral) AllText() string { return allText(e.Text, e.Blocks) }

func allText(text string, blocks json.RawMessage) string {
	parts := []string{text}
	var v any
	if len(blocks) > 0 && json.Unmarshal(blocks, &v) == nil {
		var walk func(any)
		walk = func(x any) {
			switch x := x.(type) {
			case map[string]any:
				if s, isStr := x["text"].(string); isStr {
					parts = append(parts, s)
				}
				// Sorted keys keep the result deterministic.
				for _, k := range slices.Sorted(maps.Keys(x)) {
					if c := x[k]; k != "text" || !isString(c) {
						walk(c)
					}
				}
			case []any:
				for _, c := range x {
					walk(c)
				}
			}
		}
		walk(v)
	}
	return strings.Join(parts, "\n")
}

func isString(x any) bool { _, ok := x.(string); return ok }
