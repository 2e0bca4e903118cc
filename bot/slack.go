package bot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/soc/isolate-bot/commands"
)

// Compile-time checks: Slack is the Slack Messenger and Directory.
var (
	_ commands.Messenger = (*Slack)(nil)
	_ commands.Directory = (*Slack)(nil)
)

// Slack implements commands.Messenger and commands.Directory over the Slack
// Web API. It renders with Renderer, so every user string is escaped; it
// never sets link_names or parse, and disables link unfurling.
type Slack struct {
	api *slack.Client
	log zerolog.Logger
	// Retries429 is how many times a call answered with HTTP 429 is retried
	// after waiting Retry-After (bounded by the call's ctx).
	Retries429 int

	mu    sync.Mutex
	links map[string]string // permalink cache, "channel/ts" → permalink
}

const maxCachedLinks = 4096

// NewSlack returns a Messenger and Directory over api.
func NewSlack(api *slack.Client, log zerolog.Logger) *Slack {
	return &Slack{api: api, log: log, Retries429: 3, links: map[string]string{}}
}

// logger prefers the per-event logger the Runner put in ctx (it carries
// user, command and request id) over the Slack's own.
func (s *Slack) logger(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &s.log
}

// call runs f, retrying when Slack answers 429 with Retry-After, which
// slack-go does not do by default.
func (s *Slack) call(ctx context.Context, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		var rl *slack.RateLimitedError
		if err == nil || !errors.As(err, &rl) || attempt >= s.Retries429 {
			return err
		}
		wait := max(rl.RetryAfter, 100*time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting for Slack's rate limit: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// permalinks resolves the Thread spans' permalinks (cached) and returns a
// Renderer that uses them. A failed lookup falls back to the plain label.
func (s *Slack) renderer(ctx context.Context, m commands.Message) Renderer {
	var found map[string]string
	for _, sp := range m.Spans {
		if sp.Kind != commands.Thread || sp.Channel == "" || sp.TS == "" {
			continue
		}
		key := sp.Channel + "/" + sp.TS
		s.mu.Lock()
		link, ok := s.links[key]
		s.mu.Unlock()
		if !ok {
			err := s.call(ctx, func() (err error) {
				link, err = s.api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: sp.Channel, Ts: sp.TS})
				return err
			})
			if err != nil {
				s.logger(ctx).Warn().Err(err).Str("method", "chat.getPermalink").Str("channel", sp.Channel).
					Str("ts", sp.TS).Msg("permalink lookup failed; linking the thread as plain text")
				continue
			}
			s.mu.Lock()
			if len(s.links) >= maxCachedLinks {
				clear(s.links) // permalinks are cheap to fetch again; keep memory bounded
			}
			s.links[key] = link
			s.mu.Unlock()
		}
		if found == nil {
			found = map[string]string{}
		}
		found[key] = link
	}
	return Renderer{Permalink: func(channel, ts string) string { return found[channel+"/"+ts] }}
}

// Ephemeral posts m with chat.postEphemeral, visible to user only.
func (s *Slack) Ephemeral(ctx context.Context, channel, user string, m commands.Message) error {
	blocks, text := s.renderer(ctx, m).Message(m)
	err := s.call(ctx, func() error {
		_, err := s.api.PostEphemeralContext(ctx, channel, user,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil && isNotInChannel(err) {
		// The bot cannot post in a channel it is not in, but the delivery's
		// response_url still reaches the user there.
		if ru, ok := ctx.Value(responseURLKey{}).(responseURL); ok && ru.channel == channel && ru.user == user && ru.url != "" {
			err = s.call(ctx, func() error {
				_, _, _, err := s.api.SendMessageContext(ctx, channel, slack.MsgOptionResponseURL(ru.url, slack.ResponseTypeEphemeral),
					slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
				return err
			})
			err = withoutURL(err, ru.url)
		}
	}
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("method", "chat.postEphemeral").Str("channel", channel).
			Str("user", user).Msg("ephemeral message not delivered")
		return fmt.Errorf("chat.postEphemeral to %s in %s: %w", user, channel, err)
	}
	return nil
}

// PostCard posts the request card as a channel message and returns its ts.
// commands.ErrNotInChannel when the bot is not a member of channel.
func (s *Slack) PostCard(ctx context.Context, channel string, c commands.Card) (string, error) {
	blocks, text := Renderer{}.Card(c)
	var ts string
	err := s.call(ctx, func() (err error) {
		_, ts, err = s.api.PostMessageContext(ctx, channel, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(blocks...), slack.MsgOptionDisableLinkUnfurl())
		return err
	})
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("method", "chat.postMessage").Str("channel", channel).
			Str("request_id", c.Request.ID).Msg("request card not posted")
		if isNotInChannel(err) {
			return "", fmt.Errorf("post card for %s in %s: %w (%w)", c.Request.ID, channel, commands.ErrNotInChannel, err)
		}
		return "", fmt.Errorf("post card for %s in %s: %w", c.Request.ID, channel, err)
	}
	return ts, nil
}

func isNotInChannel(err error) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && (se.Err == "not_in_channel" || se.Err == "channel_not_found" || se.Err == "user_not_in_channel")
}

// responseURL is the response_url of the delivery being handled, carried in
// ctx by the Runner: the fallback for ephemeral messages in channels the bot
// is not a member of.
type responseURL struct{ channel, user, url string }

type responseURLKey struct{}

func withResponseURL(ctx context.Context, channel, user, url string) context.Context {
	if url == "" {
		return ctx
	}
	return context.WithValue(ctx, responseURLKey{}, responseURL{channel: channel, user: user, url: url})
}

// UpdateCard replaces the card at ts with chat.update (blocks are always
// sent, so the buttons disappear once the request is decided).
func (s *Slack) UpdateCard(ctx context.Context, channel, ts string, c commands.Card) error {
	blocks, text := Renderer{}.Card(c)
	err := s.call(ctx, func() error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("method", "chat.update").Str("channel", channel).Str("ts", ts).
			Str("request_id", c.Request.ID).Msg("request card not updated")
		return fmt.Errorf("update card for %s in %s: %w", c.Request.ID, channel, err)
	}
	return nil
}

// Reply posts m in the audit thread under threadTS.
func (s *Slack) Reply(ctx context.Context, channel, threadTS string, m commands.Message) error {
	blocks, text := s.renderer(ctx, m).Message(m)
	err := s.call(ctx, func() error {
		_, _, err := s.api.PostMessageContext(ctx, channel, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(blocks...), slack.MsgOptionTS(threadTS), slack.MsgOptionDisableLinkUnfurl())
		return err
	})
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("method", "chat.postMessage").Str("channel", channel).
			Str("thread_ts", threadTS).Msg("thread reply not posted")
		return fmt.Errorf("reply in thread %s of %s: %w", threadTS, channel, err)
	}
	return nil
}

// GroupMembers lists a user group's members with usergroups.users.list.
// Caching is the caller's (commands) business.
func (s *Slack) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	var users []string
	err := s.call(ctx, func() (err error) {
		users, err = s.api.GetUserGroupMembersContext(ctx, groupID)
		return err
	})
	if err != nil {
		s.logger(ctx).Error().Err(err).Str("method", "usergroups.users.list").Str("group", groupID).
			Msg("user group members not read")
		return nil, fmt.Errorf("list members of user group %s: %w", groupID, err)
	}
	return users, nil
}

// withoutURL keeps secret out of err's text: a response_url is a
// capability to post into the channel, and net/http's *url.Error repeats
// it. errors.Is/As still see the cause.
func withoutURL(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return redactedURLError{err: err, text: strings.ReplaceAll(err.Error(), secret, "[response_url]")}
}

type redactedURLError struct {
	err  error
	text string
}

func (e redactedURLError) Error() string { return e.text }

// Unwrap skips a *url.Error (its fields hold the URL) and returns its cause.
func (e redactedURLError) Unwrap() error {
	var ue *url.Error
	if errors.As(e.err, &ue) {
		return ue.Err
	}
	return nil
}
