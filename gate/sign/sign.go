package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"golang.org/x/term"
)

// Signer signs messages with the gate key. SignMessage hashes the message
// with SHA-256 itself; for ECDSA keys the signature is ASN.1 DER.
type Signer = signature.SignerVerifier

// PasswordEnv names the environment variable holding the password of an
// encrypted private key.
const PasswordEnv = "AGENTGATE_KEY_PASSWORD"

// File names written by Generate.
const (
	PrivateKeyFile = "agentgate.key"
	PublicKeyFile  = "agentgate.pub"
)

// maxKeyFile bounds what is read from a key file.
const maxKeyFile = 64 << 10

// Password returns the password of an encrypted key: $AGENTGATE_KEY_PASSWORD
// if set, else a prompt on the terminal (twice when confirm is set). It
// fails when neither is available, so that a job never hangs on a prompt.
func Password(confirm bool) ([]byte, error) {
	if pw, ok := os.LookupEnv(PasswordEnv); ok {
		return []byte(pw), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, fmt.Errorf("the key is encrypted: set %s or run on a terminal", PasswordEnv)
	}
	defer tty.Close()
	fmt.Fprint(tty, "Password for the agentgate private key: ")
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read the password: %w", err)
	}
	if confirm {
		fmt.Fprint(tty, "Repeat the password: ")
		again, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("read the password: %w", err)
		}
		if string(again) != string(pw) {
			return nil, errors.New("the passwords do not match")
		}
	}
	return pw, nil
}

// Generate writes a new ECDSA P-256 key pair into dir: agentgate.key
// (PKCS#8 PEM, or sigstore's encrypted PEM when password is non-empty; mode
// 0600) and agentgate.pub (PKIX PEM, mode 0644). It refuses to overwrite an
// existing key.
func Generate(dir string, password []byte) (privPath, pubPath string, err error) {
	var pf cryptoutils.PassFunc
	if len(password) > 0 {
		pf = cryptoutils.StaticPasswordFunc(password)
	}
	privPEM, pubPEM, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), pf)
	if err != nil {
		return "", "", fmt.Errorf("generate the key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	privPath = filepath.Join(dir, PrivateKeyFile)
	pubPath = filepath.Join(dir, PublicKeyFile)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s already exists; move it away or choose another --out directory", p)
		}
	}
	if err := writeNew(privPath, privPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		os.Remove(privPath)
		return "", "", err
	}
	return privPath, pubPath, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil { // umask may have narrowed it; never widened
		f.Close()
		return err
	}
	return f.Close()
}

// IsKMSRef reports whether ref names a KMS key (NAME://...) rather than a file.
func IsKMSRef(ref string) bool {
	i := strings.Index(ref, "://")
	return i > 0 && ref[:i] != "file"
}

// Load returns the signer named by ref: a PEM private key file (a path or
// file://PATH) or a KMS reference NAME://KEY. pass supplies the password of
// an encrypted key file; nil means Password.
func Load(ctx context.Context, ref string, pass cryptoutils.PassFunc) (Signer, error) {
	if ref == "" {
		return nil, errors.New("sign: no signing key given; create one with `agentgate keys generate --out DIR` and pass DIR/agentgate.key")
	}
	if IsKMSRef(ref) {
		sv, err := kms.Get(ctx, ref, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("sign: load KMS key %s (is the sigstore-kms-* plugin on PATH?): %w", ref, err)
		}
		return sv, nil
	}
	path := strings.TrimPrefix(ref, "file://")
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("sign: read the private key: %w", err)
	}
	if pass == nil {
		pass = Password
	}
	pf := pass
	if !strings.Contains(string(data), "ENCRYPTED") {
		pf = cryptoutils.SkipPassword
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	if err != nil {
		return nil, fmt.Errorf("sign: %s is not a usable private key (wrong password, or not PEM?): %w", path, err)
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sign: %s is not an ECDSA P-256 key; agentgate signs with P-256 (agentgate keys generate)", path)
	}
	sv, err := signature.LoadECDSASignerVerifier(ec, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sv, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes; not a key file", path, maxKeyFile)
	}
	return data, nil
}

// LoadPublicKey reads a PEM public key file.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("sign: read the public key: %w", err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("sign: %s is not a PEM public key: %w", path, err)
	}
	if ec, ok := pub.(*ecdsa.PublicKey); !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sign: %s is not an ECDSA P-256 public key; agentgate keys are P-256 (agentgate keys generate)", path)
	}
	return pub, nil
}

// LoadVerifier reads a PEM public key file (or, for a KMS reference, asks
// the KMS for its public key) and returns a SHA-256 verifier for it.
func LoadVerifier(ctx context.Context, ref string) (signature.Verifier, error) {
	if IsKMSRef(ref) {
		sv, err := kms.Get(ctx, ref, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("sign: load KMS key %s: %w", ref, err)
		}
		return sv, nil
	}
	pub, err := LoadPublicKey(strings.TrimPrefix(ref, "file://"))
	if err != nil {
		return nil, err
	}
	return signature.LoadVerifier(pub, crypto.SHA256)
}

// KeyHint is the base64 (standard, padded) SHA-256 of the DER-encoded public
// key: the "hint" of a Sigstore bundle's public key identifier.
func KeyHint(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("sign: encode the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
