package fakeslack

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// TestReconnects proves the client reconnects after a disconnect message
// and after the connection is dropped, and that envelopes sent while no
// connection is live are delivered once one is.
func TestReconnects(t *testing.T) {
	fs := New(t, Options{})
	runClient(t, newAPI(fs), ackAll)
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}

	fs.Disconnect("refresh_requested")
	if err := fs.WaitConnectionsOpened(2, wait); err != nil {
		t.Fatal(err)
	}
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	// The client closes the old socket itself, well within the grace period.
	if err := fs.waitFor(wait, "connection 1 closed", func() bool { return !fs.conns[0].Live }); err != nil {
		t.Fatal(err)
	}
	if st := fs.ConnStats()[0]; !st.Draining {
		t.Errorf("connection 1 = %+v, want draining", st)
	}

	fs.DropConnections()
	if fs.Connections() != 0 {
		t.Errorf("Connections() = %d right after DropConnections, want 0", fs.Connections())
	}
	env := fs.SlashCommand("U1", "C1", "/isolate", "queued while down")
	if err := fs.WaitConnectionsOpened(3, wait); err != nil {
		t.Fatal(err)
	}
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	if ack.ConnID != 3 {
		t.Errorf("queued envelope acked on connection %d, want 3", ack.ConnID)
	}
}

// TestConnectionsOpenFailures proves transient apps.connections.open
// failures are retried by the client, while invalid_auth is fatal.
func TestConnectionsOpenFailures(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		fs := New(t, Options{})
		fs.FailNext("apps.connections.open", http.StatusServiceUnavailable, -1, "")
		fs.FailNext("apps.connections.open", 0, -1, "internal_error")
		runClient(t, newAPI(fs), ackAll)
		if err := fs.WaitConnections(1, wait); err != nil {
			t.Fatal(err)
		}
		calls := fs.Calls("apps.connections.open")
		if len(calls) != 3 || calls[0].Status != 503 || calls[1].Error != "internal_error" || calls[2].Error != "" {
			t.Errorf("apps.connections.open calls = %+v", calls)
		}
		if calls[0].Auth != "app" {
			t.Errorf("auth = %q, want app (Bearer xapp token)", calls[0].Auth)
		}
	})
	t.Run("until further notice", func(t *testing.T) {
		fs := New(t, Options{})
		fs.FailAlways("apps.connections.open", 0, -1, "internal_error")
		runClient(t, newAPI(fs), ackAll)
		if _, err := fs.WaitCalls("apps.connections.open", 2, wait); err != nil {
			t.Fatal(err)
		}
		if fs.Connections() != 0 {
			t.Fatal("connected despite FailAlways")
		}
		fs.ClearFaults("apps.connections.open")
		if err := fs.WaitConnections(1, wait); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("invalid_auth is fatal", func(t *testing.T) {
		fs := New(t, Options{})
		api := slack.New(fs.BotToken(), slack.OptionAppLevelToken("xapp-wrong"), slack.OptionAPIURL(fs.APIURL()))
		runErr := runClient(t, api, func(socketmode.Event, *socketmode.Client) {})
		select {
		case err := <-runErr:
			if err == nil || err.Error() != "invalid_auth" {
				t.Errorf("RunContext = %v, want invalid_auth", err)
			}
		case <-time.After(wait):
			t.Fatal("RunContext did not return on invalid_auth")
		}
	})
}

// TestUnackedEnvelopeIsRedelivered proves an envelope not acked in time is
// sent again, once, with retry_attempt 1 and retry_reason timeout.
func TestUnackedEnvelopeIsRedelivered(t *testing.T) {
	fs := New(t, Options{RedeliveryTimeout: 200 * time.Millisecond})
	attempts := make(chan int, 4)
	runClient(t, newAPI(fs), func(evt socketmode.Event, c *socketmode.Client) {
		if evt.Type != socketmode.EventTypeSlashCommand {
			return
		}
		attempts <- evt.Request.RetryAttempt
		if evt.Request.RetryAttempt == 1 && evt.Request.RetryReason == "timeout" {
			_ = c.Ack(*evt.Request) // ignore the first delivery, ack the retry
		}
	})
	if err := fs.WaitConnections(1, wait); err != nil {
		t.Fatal(err)
	}
	env := fs.SlashCommand("U1", "C1", "/isolate", "host-1 full x")
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fs.WaitDeliveries(env.ID, 2, wait)
	if len(got.Deliveries) != 2 || got.Deliveries[1].RetryAttempt != 1 || !got.Acked {
		t.Errorf("deliveries = %+v acked %v", got.Deliveries, got.Acked)
	}
	if gap := got.Deliveries[1].At.Sub(got.Deliveries[0].At); gap < 200*time.Millisecond {
		t.Errorf("redelivered after %v, want >= the 200ms timeout", gap)
	}
	if ack.Latency < 200*time.Millisecond {
		t.Errorf("ack latency %v is measured from the first send, want >= 200ms", ack.Latency)
	}
	if a, b := <-attempts, <-attempts; a != 0 || b != 1 {
		t.Errorf("retry attempts seen by client = %d, %d; want 0, 1", a, b)
	}
	// Acked: no third delivery, however long we look at it.
	if n := len(fs.Envelopes()[0].Deliveries); n != 2 {
		t.Errorf("deliveries = %d, want 2", n)
	}
}

// TestTwoClientsShareEnvelopesRoundRobin proves envelopes are split over
// replicas, not mirrored.
func TestTwoClientsShareEnvelopesRoundRobin(t *testing.T) {
	fs := New(t, Options{})
	var mu sync.Mutex
	seen := map[string]int{}
	for _, name := range []string{"a", "b"} {
		runClient(t, newAPI(fs), func(evt socketmode.Event, c *socketmode.Client) {
			if evt.Type == socketmode.EventTypeSlashCommand {
				mu.Lock()
				seen[name]++
				mu.Unlock()
				_ = c.Ack(*evt.Request)
			}
		})
	}
	if err := fs.WaitConnections(2, wait); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 6 {
		ids = append(ids, fs.SlashCommand("U1", "C1", "/isolate", "x").ID)
	}
	for _, id := range ids {
		if _, err := fs.WaitAck(id, wait); err != nil {
			t.Fatal(err)
		}
	}
	st := fs.ConnStats()
	if len(st) != 2 || st[0].Delivered != 3 || st[1].Delivered != 3 || st[0].Acks != 3 || st[1].Acks != 3 {
		t.Errorf("conn stats = %+v, want 3 deliveries and acks each", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Errorf("client a saw %d, b saw %d; want 3 each", seen["a"], seen["b"])
	}
}

// dialRaw opens a Socket Mode connection with plain gorilla, the way
// slack-go does (Bearer xapp token, Origin header), and reads the hello.
func dialRaw(t *testing.T, fs *Server) (*websocket.Conn, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fs.APIURL()+"apps.connections.open", nil)
	req.Header.Set("Authorization", "Bearer "+fs.AppToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var open struct {
		OK  bool   `json:"ok"`
		URL string `json:"url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&open); err != nil || !open.OK || !strings.HasPrefix(open.URL, "ws://127.0.0.1:") {
		t.Fatalf("apps.connections.open = %+v, %v", open, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(open.URL, http.Header{"Origin": {"https://api.slack.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	var hello map[string]any
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	if err := ws.ReadJSON(&hello); err != nil || hello["type"] != "hello" {
		t.Fatalf("first frame = %v, %v; want hello", hello, err)
	}
	return ws, open.URL
}

// TestAckOnAnyConnection proves an ack is accepted on a connection other
// than the one the envelope went to (slack-go queues acks across
// reconnects), that tickets are single-use, and that PINGs are sent.
func TestAckOnAnyConnection(t *testing.T) {
	fs := New(t, Options{PingInterval: 50 * time.Millisecond})
	ws1, url1 := dialRaw(t, fs)
	if _, resp, err := websocket.DefaultDialer.Dial(url1, http.Header{"Origin": {"https://api.slack.com"}}); err == nil ||
		resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reusing a ticket: err %v, want 401", err)
	}
	pings := make(chan struct{}, 100)
	ws1.SetPingHandler(func(string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return nil
	})
	frames := make(chan []byte, 10)
	readerDone := make(chan struct{})
	go func() { // ping handlers only run while someone reads
		defer close(readerDone)
		for {
			_, data, err := ws1.ReadMessage()
			if err != nil {
				return
			}
			frames <- data
		}
	}()
	_ = ws1.SetReadDeadline(time.Time{})
	env := fs.SlashCommand("U1", "C1", "/isolate", "x")
	var got struct {
		EnvelopeID   string          `json:"envelope_id"`
		Type         string          `json:"type"`
		Accepts      bool            `json:"accepts_response_payload"`
		RetryAttempt int             `json:"retry_attempt"`
		Payload      json.RawMessage `json:"payload"`
	}
	select {
	case data := <-frames:
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("envelope not received")
	}
	if got.EnvelopeID != env.ID || got.Type != "slash_commands" || !got.Accepts || got.RetryAttempt != 0 ||
		!strings.Contains(string(got.Payload), `"trigger_id":"`+env.TriggerID+`"`) {
		t.Errorf("envelope frame = %+v", got)
	}
	select {
	case <-pings:
	case <-time.After(wait):
		t.Error("no PING within 5s")
	}

	ws2, _ := dialRaw(t, fs)
	_ = ws1.Close()
	<-readerDone
	if err := ws2.WriteJSON(map[string]string{"envelope_id": env.ID}); err != nil {
		t.Fatal(err)
	}
	ack, err := fs.WaitAck(env.ID, wait)
	if err != nil {
		t.Fatal(err)
	}
	if ack.ConnID != 2 || !ack.Known || ack.Duplicate || ack.Payload != nil {
		t.Errorf("ack = %+v, want known, first, on connection 2, no payload", ack)
	}
	if err := ws2.WriteMessage(websocket.TextMessage, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := fs.waitFor(wait, "bad frame counted", func() bool { return fs.conns[1].BadFrames == 1 }); err != nil {
		t.Error(err)
	}
}
