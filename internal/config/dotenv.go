package config

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/joho/godotenv"
)

// WithDotEnv returns a lookup that answers from getenv and, for variables
// getenv leaves empty, from the .env-style file at path. The environment
// always wins, so a deployment's variables are never shadowed by a stray
// file; the process environment itself is not modified. A missing file is
// not an error (.env is for local development only).
func WithDotEnv(path string, getenv func(string) string) (func(string) string, error) {
	file, err := godotenv.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		// godotenv's parse errors quote the offending line, which may hold a
		// secret: report the file only.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("read %s: %w", path, pe.Err)
		}
		return nil, fmt.Errorf("read %s: not a valid .env file (expected NAME=value lines; see .env.example)", path)
	}
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return file[name]
	}, nil
}
