package deploy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soc/isolate-bot/internal/config"
)

// composeFile is the subset of compose.yaml the test checks.
type composeFile struct {
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Image       string            `json:"image"`
	Command     []string          `json:"command"`
	EnvFile     any               `json:"env_file"`
	Environment map[string]string `json:"environment"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	ReadOnly        bool     `json:"read_only"`
	User            string   `json:"user"`
	CapDrop         []string `json:"cap_drop"`
	StopGracePeriod string   `json:"stop_grace_period"`
	Ports           []string `json:"ports"`
	SecurityOpt     []string `json:"security_opt"`
	Volumes         []string `json:"volumes"`
	MemLimit        string   `json:"mem_limit"`
}

// TestCompose: the example Compose file runs Redis with AOF and no eviction
// at a maxmemory below its mem_limit, keeps credentials in .env and locks
// the bot container down.
func TestCompose(t *testing.T) {
	var c composeFile
	unmarshal(t, docs(t, "compose.yaml")[0], &c)
	for _, name := range []string{"bot", "redis"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("compose.yaml has no %s service", name)
		}
	}
	t.Run("redis", func(t *testing.T) { checkComposeRedis(t, c.Services["redis"]) })
	t.Run("bot", func(t *testing.T) { checkComposeBot(t, c.Services["bot"]) })
}

func checkComposeRedis(t *testing.T, redis composeService) {
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image = %q, want Redis 7", redis.Image)
	}
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	if redis.MemLimit == "" {
		t.Error("redis has no mem_limit")
	} else {
		checkMaxmemory(t, "compose redis", redis.Command, bytesOf(t, "redis mem_limit", redis.MemLimit, dockerUnits, true))
	}
	if redis.Healthcheck == nil || !slices.Contains(redis.Healthcheck.Test, "ping") {
		t.Error("redis has no redis-cli ping healthcheck")
	}
	if len(redis.Ports) > 0 {
		t.Errorf("redis publishes ports %v; only the bot should reach it", redis.Ports)
	}
	if len(redis.Volumes) == 0 || !strings.HasSuffix(redis.Volumes[0], ":/data") {
		t.Errorf("redis data is not on a volume at /data: %v", redis.Volumes)
	}
}

func checkComposeBot(t *testing.T, botSvc composeService) {
	if botSvc.DependsOn["redis"].Condition != "service_healthy" {
		t.Errorf("bot depends_on redis = %+v, want condition service_healthy", botSvc.DependsOn)
	}
	if botSvc.EnvFile != ".env" {
		t.Errorf("bot env_file = %v, want .env", botSvc.EnvFile)
	}
	for k, v := range botSvc.Environment {
		if !isVariable(k) {
			t.Errorf("compose environment %s is not a variable config.Load reads", k)
		}
		if slices.Contains(secretVars, k) && strings.Contains(v, "@") {
			t.Errorf("compose environment %s holds a credential; put it in .env", k)
		}
		if k != "REDIS_URL" && slices.Contains(secretVars, k) {
			t.Errorf("compose environment sets %s; credentials belong in .env", k)
		}
	}
	if !botSvc.ReadOnly || botSvc.User != "65532:65532" || !slices.Equal(botSvc.CapDrop, []string{"ALL"}) {
		t.Errorf("bot service not locked down: read_only=%v user=%q cap_drop=%v", botSvc.ReadOnly, botSvc.User, botSvc.CapDrop)
	}
	if !slices.Contains(botSvc.SecurityOpt, "no-new-privileges:true") {
		t.Error("bot service lacks no-new-privileges")
	}
	grace, err := time.ParseDuration(botSvc.StopGracePeriod)
	if err != nil || grace < config.DefaultShutdownTimeout+5*time.Second {
		t.Errorf("bot stop_grace_period = %q, want ≥ SHUTDOWN_TIMEOUT + 5s", botSvc.StopGracePeriod)
	}
	for _, p := range botSvc.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("bot publishes %q beyond loopback", p)
		}
	}
}
