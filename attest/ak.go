package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// akUnique makes the AK meshcast's own: a primary key is derived from the
// hierarchy seed and its template, so the same template gives the same key
// on the same TPM, and a different one gives another key.
var akUnique = sha256.Sum256([]byte("meshcast/attest/ak/1"))

// akTemplate is the AK: a restricted ECDSA P-256 / SHA-256 signing key. A
// restricted key signs only digests the TPM computed itself over data that
// starts with TPM_GENERATED_VALUE, so a signature of it over a TPMS_ATTEST
// proves the TPM produced that structure.
func akTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA,
					&tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: akUnique[:]},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// AK is the attestation key of one TPM, loaded in it. The key is a primary
// key of the endorsement hierarchy with a fixed template, so LoadAK returns
// the same key every time on the same TPM ("created or loaded"), and the
// TPM reports its true reset and restart counts in quotes.
type AK struct {
	tpm    *TPM
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    *ecdsa.PublicKey
	der    []byte // PKIX
}

// LoadAK creates the AK in tpm's endorsement hierarchy (empty
// authorization) and returns it loaded; Close flushes it.
func LoadAK(tpm *TPM) (*AK, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate()),
	}.Execute(tpm.t)
	if err != nil {
		return nil, fmt.Errorf("tpm %s: create ak: %w", tpm.name, err)
	}
	ak := &AK{tpm: tpm, handle: rsp.ObjectHandle, name: rsp.Name}
	if err := ak.setPublic(rsp.OutPublic); err != nil {
		return nil, errors.Join(err, ak.Close())
	}
	return ak, nil
}

func (ak *AK) setPublic(out tpm2.TPM2BPublic) error {
	pub, err := out.Contents()
	if err != nil {
		return fmt.Errorf("tpm %s: ak public: %w", ak.tpm.name, err)
	}
	k, err := tpm2.Pub(*pub)
	if err != nil {
		return fmt.Errorf("tpm %s: ak public: %w", ak.tpm.name, err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return fmt.Errorf("tpm %s: ak public: %T, want an ECDSA P-256 key", ak.tpm.name, k)
	}
	der, err := x509.MarshalPKIXPublicKey(ec)
	if err != nil {
		return fmt.Errorf("tpm %s: ak public: %w", ak.tpm.name, err)
	}
	ak.pub, ak.der = ec, der
	return nil
}

// Public returns the AK's public key, an *ecdsa.PublicKey on P-256.
func (ak *AK) Public() crypto.PublicKey { return ak.pub }

// DER returns the AK's public key as PKIX DER.
func (ak *AK) DER() []byte { return append([]byte(nil), ak.der...) }

// PEM returns the AK's public key as a PEM "PUBLIC KEY" block, the form a
// site policy enrolls.
func (ak *AK) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ak.der})
}

// Fingerprint returns the AK's stable identity: the hex SHA-256 of its
// PKIX DER.
func (ak *AK) Fingerprint() string { return Fingerprint(ak.der) }

// Fingerprint returns the hex SHA-256 of a PKIX DER public key.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Close flushes the AK from the TPM; the TPM stays open.
func (ak *AK) Close() error {
	if _, err := (tpm2.FlushContext{FlushHandle: ak.handle}).Execute(ak.tpm.t); err != nil {
		return fmt.Errorf("tpm %s: flush ak: %w", ak.tpm.name, err)
	}
	return nil
}
