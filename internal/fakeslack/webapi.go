package fakeslack

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Call is one Web API call (or response_url post) as the fake saw it.
type Call struct {
	Method string // "chat.postMessage", …; "response_url" for response_url posts
	// Form holds the request's form fields (all of them: link_names, parse,
	// unfurl_links, …) except "token", which is never recorded.
	Form url.Values
	// Body is the raw body of JSON requests (apps.connections.open,
	// response_url); nil for form requests.
	Body []byte
	// Auth says which credential came with the call: "bot", "app",
	// "invalid" or "none".
	Auth   string
	At     time.Time // when the call arrived
	Status int       // HTTP status answered
	Error  string    // Slack error answered; "" when ok
}

// fault is one injected failure.
type fault struct {
	status     int
	retryAfter int // seconds; < 0 omits the header
	slackError string
}

// FailNext makes the next call to method fail: HTTP status (0 means 200)
// with body {"ok":false,"error":slackError}. slackError defaults to
// "ratelimited" for 429 and "internal_error" otherwise. A Retry-After header
// with the integer retryAfterSeconds is sent when retryAfterSeconds > 0, or
// when it is 0 and status is 429; pass -1 to omit it (slack-go then reports
// slack.StatusCodeError instead of *slack.RateLimitedError). Calls queue up:
// calling FailNext twice fails the next two calls. method is a Web API method
// name, or "response_url" for the response_url endpoint.
func (s *Server) FailNext(method string, status, retryAfterSeconds int, slackError string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], newFault(status, retryAfterSeconds, slackError))
}

// FailAlways makes every call to method fail as FailNext describes, until
// ClearFaults. Queued FailNext faults are used up first.
func (s *Server) FailAlways(method string, status, retryAfterSeconds int, slackError string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := newFault(status, retryAfterSeconds, slackError)
	s.always[method] = &f
}

// ClearFaults removes every queued and permanent fault for method.
func (s *Server) ClearFaults(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, method)
	delete(s.always, method)
}

// Hang makes every later call to method wait d before it is handled (the
// wait ends early if the client gives up or the server closes). d <= 0 ends
// the slowness.
func (s *Server) Hang(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.hangs, method)
		return
	}
	s.hangs[method] = d
}

func newFault(status, retryAfter int, slackError string) fault {
	if status == 0 {
		status = http.StatusOK
	}
	if slackError == "" {
		slackError = "internal_error"
		if status == http.StatusTooManyRequests {
			slackError = "ratelimited"
		}
	}
	if retryAfter == 0 && status != http.StatusTooManyRequests {
		retryAfter = -1
	}
	return fault{status: status, retryAfter: retryAfter, slackError: slackError}
}

// Calls returns every recorded call to method, oldest first; method ""
// returns all calls.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// WaitCalls waits until at least n calls to method have been answered.
func (s *Server) WaitCalls(method string, n int, timeout time.Duration) ([]Call, error) {
	var out []Call
	err := s.waitFor(timeout, strconv.Itoa(n)+" calls to "+method, func() bool {
		out = out[:0]
		for _, c := range s.calls {
			if c.Method == method {
				out = append(out, c)
			}
		}
		return len(out) >= n
	})
	return append([]Call(nil), out...), err
}

// apiReply is what a Web API handler answers.
type apiReply struct {
	status     int
	retryAfter int // < 0: no header
	body       map[string]any
}

func ok(fields map[string]any) apiReply {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["ok"] = true
	return apiReply{status: http.StatusOK, retryAfter: -1, body: fields}
}

func fail(slackError string) apiReply {
	return apiReply{status: http.StatusOK, retryAfter: -1, body: map[string]any{"ok": false, "error": slackError}}
}

// handleAPI serves /api/<method>.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	call := Call{Method: method, At: time.Now()}
	var token string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		call.Body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		call.Form = url.Values{}
	} else {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		call.Form = r.PostForm
		if len(call.Form) == 0 {
			call.Form = r.Form
		}
		token = call.Form.Get("token")
		call.Form = cloneWithout(call.Form, "token")
	}
	if b, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && token == "" {
		token = b
	}
	switch {
	case token == "":
		call.Auth = "none"
	case token == s.opts.BotToken:
		call.Auth = "bot"
	case token == s.opts.AppToken:
		call.Auth = "app"
	default:
		call.Auth = "invalid"
	}

	if !s.hang(r, method) {
		return
	}
	reply, faulted := s.takeFault(method)
	if !faulted {
		reply = s.dispatch(r, &call)
	}
	call.Status = reply.status
	if e, _ := reply.body["error"].(string); e != "" {
		call.Error = e
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.notifyLocked()
	s.mu.Unlock()
	writeReply(w, reply)
}

// hang applies Hang for method; false means the request or server ended
// while waiting and nothing should be written.
func (s *Server) hang(r *http.Request, method string) bool {
	s.mu.Lock()
	d := s.hangs[method]
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.done:
	}
	return false
}

func (s *Server) takeFault(method string) (apiReply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f fault
	if q := s.faults[method]; len(q) > 0 {
		f = q[0]
		s.faults[method] = q[1:]
	} else if a := s.always[method]; a != nil {
		f = *a
	} else {
		return apiReply{}, false
	}
	return apiReply{status: f.status, retryAfter: f.retryAfter,
		body: map[string]any{"ok": false, "error": f.slackError}}, true
}

func writeReply(w http.ResponseWriter, reply apiReply) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if reply.retryAfter >= 0 {
		w.Header().Set("Retry-After", strconv.Itoa(reply.retryAfter))
	}
	w.WriteHeader(reply.status)
	_ = json.NewEncoder(w).Encode(reply.body)
}

func cloneWithout(v url.Values, key string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if k != key {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}

// dispatch runs one authenticated-or-not Web API method.
func (s *Server) dispatch(r *http.Request, call *Call) apiReply {
	switch call.Auth {
	case "none":
		return fail("not_authed")
	case "invalid":
		return fail("invalid_auth")
	}
	f := call.Form
	switch call.Method {
	case "apps.connections.open":
		if call.Auth != "app" {
			return fail("not_allowed_token_type")
		}
		return s.connectionsOpen(r)
	case "auth.test":
		// Both tokens work: `bot check` verifies the app-level token too.
		reply := map[string]any{"url": "https://fake.slack.test/", "team": "Fake", "team_id": s.opts.TeamID}
		if call.Auth == "app" {
			reply["app_id"] = s.opts.AppID
		} else {
			reply["user"] = "isolatebot"
			reply["user_id"] = s.opts.BotUserID
			reply["bot_id"] = s.opts.BotID
		}
		return ok(reply)
	}
	if call.Auth != "bot" {
		return fail("not_allowed_token_type")
	}
	switch call.Method {
	case "chat.postMessage":
		return s.postMessage(f)
	case "chat.update":
		return s.update(f)
	case "chat.postEphemeral":
		return s.postEphemeral(f)
	case "chat.getPermalink":
		ch, ts := f.Get("channel"), f.Get("message_ts")
		if ch == "" || ts == "" {
			return fail("invalid_arguments")
		}
		if s.findMessage(ch, ts) == nil {
			return fail("message_not_found")
		}
		return ok(map[string]any{"channel": ch, "permalink": Permalink(ch, ts)})
	case "users.info":
		return s.usersInfo(f.Get("user"))
	case "usergroups.users.list":
		members, found := s.opts.UserGroups[f.Get("usergroup")]
		if !found {
			return fail("no_such_subteam")
		}
		return ok(map[string]any{"users": append([]string{}, members...)})
	}
	return fail("unknown_method")
}

func (s *Server) connectionsOpen(r *http.Request) apiReply {
	s.mu.Lock()
	ticket := "tkt-" + strconv.FormatInt(s.nextLocked(), 10)
	s.tickets[ticket] = true
	s.mu.Unlock()
	u := "ws://" + r.Host + "/link/?ticket=" + ticket + "&app_id=" + url.QueryEscape(s.opts.AppID)
	return ok(map[string]any{"url": u})
}

func (s *Server) usersInfo(id string) apiReply {
	if id == "" {
		return fail("user_not_found")
	}
	u, found := s.opts.Users[id]
	if !found {
		if s.opts.Users != nil {
			return fail("user_not_found")
		}
		u = User{ID: id, IsBot: id == s.opts.BotUserID}
	}
	u.ID = id
	if u.Name == "" {
		u.Name = strings.ToLower(id)
	}
	if u.RealName == "" {
		u.RealName = u.Name
	}
	return ok(map[string]any{"user": map[string]any{
		"id": u.ID, "team_id": s.opts.TeamID, "name": u.Name, "real_name": u.RealName,
		"deleted": u.Deleted, "is_bot": u.IsBot, "is_admin": false, "is_owner": false,
		"is_restricted": false, "is_ultra_restricted": false, "tz": u.TZ,
		"profile": map[string]any{"display_name": u.Name, "real_name": u.RealName, "email": u.Email},
	}})
}

// memberLocked reports whether the bot may post in channel.
func (s *Server) memberLocked(channel string) bool {
	return s.channels == nil || s.channels[channel]
}

// parseContent reads text and blocks from a posting form. hasBlocks is
// false when the form has no "blocks" field at all.
// newContent is parseContent for a new message, which must say something.
func newContent(f url.Values) (text string, blocks json.RawMessage, errReply *apiReply) {
	text, blocks, _, errReply = parseContent(f)
	if errReply == nil && text == "" && len(blocks) == 0 {
		r := fail("no_text")
		errReply = &r
	}
	return text, blocks, errReply
}

func parseContent(f url.Values) (text string, blocks json.RawMessage, hasBlocks bool, errReply *apiReply) {
	text = f.Get("text")
	if _, hasBlocks = f["blocks"]; !hasBlocks {
		return text, nil, false, nil
	}
	raw := f.Get("blocks")
	if raw == "" {
		return text, nil, true, nil
	}
	b, problems := validateBlocks([]byte(raw))
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = "[ERROR] " + p
		}
		return "", nil, true, &apiReply{status: http.StatusOK, retryAfter: -1, body: map[string]any{
			"ok": false, "error": "invalid_blocks", "errors": problems,
			"response_metadata": map[string]any{"messages": msgs},
		}}
	}
	return text, b, true, nil
}

func (s *Server) postMessage(f url.Values) apiReply {
	channel := f.Get("channel")
	if channel == "" {
		return fail("channel_not_found")
	}
	text, blocks, bad := newContent(f)
	if bad != nil {
		return *bad
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.memberLocked(channel) {
		return fail("not_in_channel")
	}
	threadTS := f.Get("thread_ts")
	if threadTS != "" && s.findMessageLocked(channel, threadTS) == nil {
		// Slack posts to a missing thread as a root message; a test would
		// rather hear about it.
		return fail("thread_not_found")
	}
	m := &Message{
		Channel: channel, TS: s.tsLocked(), ThreadTS: threadTS, User: s.opts.BotUserID,
		Text: text, Blocks: blocks, Form: cloneWithout(f, "token"), Via: "chat.postMessage", PostedAt: time.Now(),
	}
	s.messages[channel] = append(s.messages[channel], m)
	s.notifyLocked()
	return ok(map[string]any{"channel": channel, "ts": m.TS, "message": s.messageJSONLocked(m)})
}

func (s *Server) update(f url.Values) apiReply {
	channel, ts := f.Get("channel"), f.Get("ts")
	text, blocks, hasBlocks, bad := parseContent(f)
	if bad != nil {
		return *bad
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.memberLocked(channel) {
		return fail("not_in_channel")
	}
	m := s.findMessageLocked(channel, ts)
	if m == nil {
		return fail("message_not_found")
	}
	if m.User != s.opts.BotUserID {
		return fail("cant_update_message")
	}
	if _, has := f["text"]; !has && !hasBlocks {
		return fail("no_text")
	}
	// Keep the old version in the history before changing it.
	m.Updates = append(m.Updates, Update{Text: m.Text, Blocks: m.Blocks, Form: m.Form, At: time.Now()})
	if _, has := f["text"]; has {
		m.Text = text
	}
	if hasBlocks {
		m.Blocks = blocks
	}
	m.Form = cloneWithout(f, "token")
	s.notifyLocked()
	return ok(map[string]any{"channel": channel, "ts": ts, "text": m.Text, "message": s.messageJSONLocked(m)})
}

func (s *Server) postEphemeral(f url.Values) apiReply {
	channel, user := f.Get("channel"), f.Get("user")
	if user == "" {
		return fail("user_not_found")
	}
	text, blocks, bad := newContent(f)
	if bad != nil {
		return *bad
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.memberLocked(channel) {
		return fail("not_in_channel")
	}
	e := Ephemeral{Channel: channel, User: user, TS: s.tsLocked(), ThreadTS: f.Get("thread_ts"),
		Text: text, Blocks: blocks, Form: cloneWithout(f, "token"), Via: "chat.postEphemeral", At: time.Now()}
	s.ephemeral = append(s.ephemeral, e)
	s.notifyLocked()
	return ok(map[string]any{"message_ts": e.TS})
}

// messageJSONLocked renders m as Slack shows it in API replies and in
// interactive payloads. Blocks are always present (possibly []) because
// slack-go decodes them strictly.
func (s *Server) messageJSONLocked(m *Message) map[string]any {
	blocks := m.Blocks
	if len(blocks) == 0 {
		blocks = json.RawMessage("[]")
	}
	out := map[string]any{"type": "message", "user": m.User, "text": m.Text, "ts": m.TS, "blocks": blocks}
	if m.User == s.opts.BotUserID {
		out["bot_id"] = s.opts.BotID
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	return out
}

func (s *Server) findMessage(channel, ts string) *Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.findMessageLocked(channel, ts)
}

func (s *Server) findMessageLocked(channel, ts string) *Message {
	for _, m := range s.messages[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}
