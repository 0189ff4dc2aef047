package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxHtpasswdSize bounds a users file.
const maxHtpasswdSize = 1 << 20

// ParseHtpasswd reads a users file in the format `htpasswd -B` writes: one
// "user:bcrypt-hash" per line; blank lines and lines starting with "#" are
// ignored. Only bcrypt hashes ($2a$, $2b$, $2y$) are accepted, since the
// other htpasswd formats (MD5, SHA-1, crypt, plain) are too weak to put on a
// network. It returns the hashes by user; errors name the offending line.
func ParseHtpasswd(r io.Reader) (map[string][]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxHtpasswdSize+1))
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	if len(b) > maxHtpasswdSize {
		return nil, fmt.Errorf("users file larger than %d bytes", maxHtpasswdSize)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), maxHtpasswdSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("users line %d: want user:hash", n)
		}
		if err := checkUserName(user); err != nil {
			return nil, fmt.Errorf("users line %d: %w", n, err)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("users line %d: user %q listed twice", n, user)
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return nil, fmt.Errorf("users line %d: user %q: only bcrypt hashes are accepted (htpasswd -B)", n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("users line %d: user %q: %w", n, user, err)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	if len(users) == 0 {
		return nil, errors.New("users file lists no user")
	}
	return users, nil
}

// HashPassword returns the bcrypt hash of password, for AuthOptions.Users.
func HashPassword(password string) ([]byte, error) {
	if password == "" {
		return nil, errors.New("empty password")
	}
	if len(password) > 72 {
		return nil, errors.New("password longer than 72 bytes (bcrypt's limit)")
	}
	return bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
}

// checkUserName accepts the user names a Basic Authorization header can
// carry.
func checkUserName(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case len(user) > maxCredentialLn:
		return errors.New("user name too long")
	case strings.ContainsAny(user, ":\n\r\t "):
		return fmt.Errorf("user name %q contains a colon or white space", user)
	}
	return nil
}
