package config

import "time"

// Every default value of isolate-bot lives here. The packages keep none of
// their own: they refuse a zero value, and internal/app passes these down
// through Config. README.md documents the variables' defaults and, under
// "Fixed values", the fixed values that matter to operators.

// Defaults of the environment variables (the public interface: README.md,
// .env.example and the deploy files agree with them).
const (
	DefaultSlackAPIURL    = "https://slack.com/api/"            // SLACK_API_URL
	DefaultAuthorityHost  = "https://login.microsoftonline.com" // AZURE_AUTHORITY_HOST
	DefaultDefenderAPIURL = "https://api.securitycenter.microsoft.com"
	DefaultSimulate       = false            // DEFENDER_SIMULATE (console: see LoadConsole)
	DefaultRedisPrefix    = "isolate-bot"    // REDIS_PREFIX
	DefaultPerMinute      = 100              // RATE_LIMIT_PER_MINUTE: MDE's limit per API
	DefaultPerHour        = 1500             // RATE_LIMIT_PER_HOUR: MDE's limit per API
	DefaultApprovalTTL    = time.Hour        // APPROVAL_TTL
	DefaultAuditRetention = 720 * time.Hour  // AUDIT_RETENTION (30 days)
	DefaultQueueMaxWait   = 2 * time.Hour    // QUEUE_MAX_WAIT
	DefaultMDECallTimeout = 30 * time.Second // MDE_CALL_TIMEOUT
	DefaultFollowFor      = 72 * time.Hour   // FOLLOW_FOR: MDE's retry window for offline devices
	DefaultWorkers        = 16               // WORKERS
	DefaultBulkMax        = 500              // BULK_MAX: the most machines one command may name
	// BULK_TWO_APPROVERS_OVER: more machines than this need two approvers.
	DefaultBulkTwoApproversOver = 10
	DefaultShutdownTimeout      = 25 * time.Second // SHUTDOWN_TIMEOUT
	DefaultHTTPAddr             = ":8080"          // HTTP_ADDR
	DefaultLogLevel             = "info"           // LOG_LEVEL
	DefaultLogFormat            = "json"           // LOG_FORMAT
	DefaultProtectedMode        = "two-approvers"  // PROTECTED_MODE (PROTECTED_MACHINES defaults to none)
	ConsoleLogLevel             = "warn"           // LOG_LEVEL in console mode: a terminal wants warnings only
	ConsoleLogFormat            = "console"        // LOG_FORMAT in console mode: readable
)

// Defaults of the fixed values (no environment variable; see Fixed).
const (
	DefaultCommandTimeout = 20 * time.Second
	DefaultCommandQueue   = 256
	DefaultClickWorkers   = 4
	DefaultClickQueue     = 64
	DefaultDedupTTL       = time.Hour
	// Followed MDE actions are read every DefaultPollInterval during their
	// first DefaultPollFastFor (a change reaches the card within 15 s), then
	// twice as long for each further DefaultPollFastFor, up to
	// DefaultPollMaxInterval; one batched read covers every due action.
	DefaultPollInterval    = 10 * time.Second
	DefaultPollFastFor     = 10 * time.Minute
	DefaultPollMaxInterval = 5 * time.Minute
	DefaultSchedulerEvery  = 5 * time.Second
	DefaultGroupCacheTTL   = 5 * time.Minute
	DefaultRateLimitMinute = 61 * time.Second   // 60 s plus 1 s against clock jitter and network delay
	DefaultRateLimitHour   = 3605 * time.Second // 3600 s plus 5 s, likewise
	// After this many refusals to one user within the window, one "slow
	// down" reply, then silence until the window ends.
	DefaultRefusalBurst  = 10
	DefaultRefusalWindow = time.Minute
	// A running batch's card is updated at most this often.
	DefaultBulkProgressEvery    = 5 * time.Second
	DefaultBulkReadEvery        = 100
	DefaultBulkReadSkew         = 5 * time.Minute
	DefaultAuditMaxLen          = 100000
	DefaultMDEMaxGetAttempts    = 3
	DefaultMDEBaseBackoff       = 200 * time.Millisecond
	DefaultMDEMaxBackoff        = 5 * time.Second
	DefaultMDEMaxRetryAfterWait = 30 * time.Second
	// MDE answers spurious 404s for existing devices: a GET answered 404
	// is read once more after this pause.
	DefaultMDENotFoundRetryDelay = 2 * time.Second
	DefaultReadyCheckTimeout     = 700 * time.Millisecond
	DefaultBotCheckTimeout       = 10 * time.Second
	DefaultRedisStartTimeout     = 5 * time.Second
	DefaultSlackCallTimeout      = 30 * time.Second
	// DefaultConsoleDrain bounds the console's wait, after end of input,
	// for running work (status following), so a piped script sees the outcome.
	DefaultConsoleDrain = time.Minute
)

// The console's fixed timings (LoadConsole), at CONSOLE_SPEED=1: quick
// enough to watch an action go Pending → InProgress → Succeeded in a few
// seconds (the simulator takes 5 s).
const (
	ConsolePollInterval   = time.Second
	ConsoleSchedulerEvery = time.Second
)

// Fixed are the values that have no environment variable. Load fills them
// with DefaultFixed (LoadConsole with the console's timings); tests and the
// console's CONSOLE_SPEED shorten them on the loaded Config. internal/app
// passes each one to the package that uses it.
type Fixed struct {
	// CommandTimeout bounds one slash command or button click, from its
	// delivery to its last reply: the Slack runner's per-delivery deadline
	// and the commands service's own are this one value. An approved MDE
	// call runs in the background, outside it.
	CommandTimeout  time.Duration
	CommandQueue    int           // slash commands waiting for one of WORKERS
	ClickWorkers    int           // button clicks' own workers, so a command flood never delays an Approve
	ClickQueue      int           // button clicks waiting for a click worker
	DedupTTL        time.Duration // how long a Slack delivery id is remembered (Slack redelivers within minutes)
	PollInterval    time.Duration // the poller's cycle: reads of a followed MDE action during its first PollFastFor
	PollFastFor     time.Duration // then reads back off, doubling every PollFastFor
	PollMaxInterval time.Duration // up to one read this often
	SchedulerEvery  time.Duration // scheduler pass: expiries, queued and stranded requests
	GroupCacheTTL   time.Duration // Slack user-group membership cache

	// RateLimitMinute and RateLimitHour are the limiter's windows: MDE's
	// minute and hour widened by a margin; the counts never shrink.
	RateLimitMinute time.Duration
	RateLimitHour   time.Duration

	AuditMaxLen int64 // the global audit stream is trimmed to about this many entries (and to AUDIT_RETENTION)

	// The MDE client's retries of reads (writes are never retried blindly).
	// Each HTTP attempt is bounded by MDE_CALL_TIMEOUT.
	MDEMaxGetAttempts     int           // attempts of one GET, including the first
	MDEBaseBackoff        time.Duration // first retry delay, before jitter
	MDEMaxBackoff         time.Duration // cap on one retry delay
	MDEMaxRetryAfterWait  time.Duration // longest 429 Retry-After a GET waits out
	MDENotFoundRetryDelay time.Duration // pause before a GET answered 404 is read once more

	ReadyCheckTimeout time.Duration // each /readyz check (probes time out at 3 s)
	BotCheckTimeout   time.Duration // each check of `bot check`
	RedisStartTimeout time.Duration // the PING at start-up: a wrong REDIS_URL fails fast
	SlackCallTimeout  time.Duration // one Slack Web API call
	ConsoleDrain      time.Duration // console: wait for running work after end of input

	// ResendBackoff: the waits before each new try of an MDE write that
	// reached nobody (DNS, connection, TLS, Azure AD unreachable): 5 more
	// tries over 10.5 minutes, then the request fails.
	ResendBackoff []time.Duration
	// ReconcileChecks: after a write whose outcome is unknown, when the
	// machine's actions are read for the request's marker before any
	// resend (MDE lists a new action late, up to about a minute).
	ReconcileChecks []time.Duration
	RefusalBurst    int
	RefusalWindow   time.Duration
	// BulkProgressEvery: a running batch's card is updated at most this often.
	BulkProgressEvery time.Duration
	// BulkReadEvery: while a batch sends, its MDE actions are read once
	// per this many calls (1 % of the calls at 100).
	BulkReadEvery int
	// BulkReadSkew: a batch's reads ask for actions from this long before
	// it started (replica and MDE clocks out of step).
	BulkReadSkew time.Duration
}

// DefaultFixed returns the fixed values of a bot.
func DefaultFixed() Fixed {
	return Fixed{
		CommandTimeout:        DefaultCommandTimeout,
		CommandQueue:          DefaultCommandQueue,
		ClickWorkers:          DefaultClickWorkers,
		ClickQueue:            DefaultClickQueue,
		DedupTTL:              DefaultDedupTTL,
		PollInterval:          DefaultPollInterval,
		PollFastFor:           DefaultPollFastFor,
		PollMaxInterval:       DefaultPollMaxInterval,
		SchedulerEvery:        DefaultSchedulerEvery,
		GroupCacheTTL:         DefaultGroupCacheTTL,
		RateLimitMinute:       DefaultRateLimitMinute,
		RateLimitHour:         DefaultRateLimitHour,
		ResendBackoff:         []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute},
		ReconcileChecks:       []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute},
		RefusalBurst:          DefaultRefusalBurst,
		RefusalWindow:         DefaultRefusalWindow,
		BulkProgressEvery:     DefaultBulkProgressEvery,
		BulkReadEvery:         DefaultBulkReadEvery,
		BulkReadSkew:          DefaultBulkReadSkew,
		AuditMaxLen:           DefaultAuditMaxLen,
		MDEMaxGetAttempts:     DefaultMDEMaxGetAttempts,
		MDEBaseBackoff:        DefaultMDEBaseBackoff,
		MDEMaxBackoff:         DefaultMDEMaxBackoff,
		MDEMaxRetryAfterWait:  DefaultMDEMaxRetryAfterWait,
		MDENotFoundRetryDelay: DefaultMDENotFoundRetryDelay,
		ReadyCheckTimeout:     DefaultReadyCheckTimeout,
		BotCheckTimeout:       DefaultBotCheckTimeout,
		RedisStartTimeout:     DefaultRedisStartTimeout,
		SlackCallTimeout:      DefaultSlackCallTimeout,
		ConsoleDrain:          DefaultConsoleDrain,
	}
}

// consoleFixed is DefaultFixed with the console's quicker timings.
func consoleFixed() Fixed {
	f := DefaultFixed()
	f.PollInterval, f.SchedulerEvery = ConsolePollInterval, ConsoleSchedulerEvery
	return f
}

// defaultRaw is raw pre-filled with the variables' defaults: env keeps a
// field's value when its variable is unset, so the defaults need no tags.
func defaultRaw() raw {
	return raw{
		SlackAPIURL:     DefaultSlackAPIURL,
		AuthorityHost:   DefaultAuthorityHost,
		DefenderAPIURL:  DefaultDefenderAPIURL,
		Simulate:        DefaultSimulate,
		RedisPrefix:     DefaultRedisPrefix,
		PerMinute:       DefaultPerMinute,
		PerHour:         DefaultPerHour,
		ApprovalTTL:     DefaultApprovalTTL,
		AuditRetention:  DefaultAuditRetention,
		QueueMaxWait:    DefaultQueueMaxWait,
		MDECallTimeout:  DefaultMDECallTimeout,
		FollowFor:       DefaultFollowFor,
		BulkMax:         DefaultBulkMax,
		BulkTwoOver:     DefaultBulkTwoApproversOver,
		Workers:         DefaultWorkers,
		ShutdownTimeout: DefaultShutdownTimeout,
		HTTPAddr:        DefaultHTTPAddr,
		LogLevel:        DefaultLogLevel,
		LogFormat:       DefaultLogFormat,
		ProtectedMode:   DefaultProtectedMode,
	}
}
