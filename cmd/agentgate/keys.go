package main

import (
	"fmt"

	"github.com/agentgate/agentgate/gate/sign"
	"github.com/spf13/cobra"
)

func init() { register(newKeysCmd) }

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create the gate's signing key",
		Long: `The gate signs attestations and audit checkpoints with an ECDSA P-256 key.
Keep the private key where only the gate can read it; publish the public key
to whoever verifies (auditors, "agentgate attest verify", cosign).`,
		Example: "  agentgate keys generate --out ~/.config/agentgate/keys",
	}
	cmd.AddCommand(newKeysGenerateCmd())
	return cmd
}

func newKeysGenerateCmd() *cobra.Command {
	var out string
	var encrypt bool
	cmd := &cobra.Command{
		Use:   "generate --out DIR",
		Short: "Write a new ECDSA P-256 key pair",
		Long: `Write DIR/agentgate.key (private, PKCS#8 PEM, mode 0600) and DIR/agentgate.pub
(public, PEM). With --encrypt the private key is encrypted with a password
(sigstore's format, which cosign reads too): the password is taken from
$AGENTGATE_KEY_PASSWORD, or asked for twice on the terminal. Existing keys are
never overwritten.

Sign with "agentgate check --sign-key DIR/agentgate.key"; a KMS key can be used
instead through a sigstore KMS plugin (--sign-key NAME://KEY).`,
		Example: `  agentgate keys generate --out keys
  AGENTGATE_KEY_PASSWORD=... agentgate keys generate --out keys --encrypt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return withCode(exitInvalid, fmt.Errorf("keys generate: --out DIR is required"))
			}
			var pw []byte
			if encrypt {
				var err error
				if pw, err = sign.Password(true); err != nil {
					return withCode(exitInvalid, fmt.Errorf("keys generate: %w", err))
				}
				if len(pw) == 0 {
					return withCode(exitInvalid, fmt.Errorf("keys generate: --encrypt needs a non-empty password"))
				}
			}
			priv, pub, err := sign.Generate(out, pw)
			if err != nil {
				return withCode(exitFail, fmt.Errorf("keys generate: %w", err))
			}
			pk, err := sign.LoadPublicKey(pub)
			if err != nil {
				return withCode(exitFail, err)
			}
			hint, err := sign.KeyHint(pk)
			if err != nil {
				return withCode(exitFail, err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "private key: %s (mode 0600%s)\n", priv, map[bool]string{true: ", encrypted", false: ""}[encrypt])
			fmt.Fprintf(w, "public key:  %s\n", pub)
			fmt.Fprintf(w, "key hint:    %s\n", hint)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write agentgate.key and agentgate.pub into (created 0700)")
	cmd.Flags().BoolVar(&encrypt, "encrypt", false, "encrypt the private key with a password")
	return cmd
}
