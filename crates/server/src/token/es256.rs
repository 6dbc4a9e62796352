//! The one JWT signature the token service makes and accepts, ES256 (ECDSA
//! P-256 with SHA-256, RFC 7518 §3.4), as jsonwebtoken's process-wide crypto
//! provider, on `ring` (which rustls and rcgen already use). With no other
//! algorithm built in, jsonwebtoken's `rust_crypto` feature stays off, and
//! with it the `rsa` crate (RUSTSEC-2023-0071) and its HMAC, EdDSA and P-384
//! code.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    // The token service reads and writes no JWK: these are never called.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes ES256 jsonwebtoken's provider for this process, before the first
/// token is signed or verified; later calls change nothing.
pub(super) fn install() {
    // An error says a provider is installed already: this one, since
    // nothing else in imagegate installs one.
    let _ = PROVIDER.install_default();
}

/// A signer for ES256 only, from the PKCS#8 key an [`EncodingKey`] holds.
fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    if key.family() != AlgorithmFamily::Ec {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.as_bytes(), &rng)
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    Ok(Box::new(Es256Signer { pair, rng }))
}

/// A verifier for ES256 only, from the uncompressed point a
/// [`DecodingKey`] holds.
fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    if key.family() != AlgorithmFamily::Ec {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Es256Verifier {
        point: key.try_get_as_bytes()?.to_vec(),
    }))
}

struct Es256Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl signature::Signer<Vec<u8>> for Es256Signer {
    /// The JWS form: `r || s`, 64 bytes.
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Es256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct Es256Verifier {
    point: Vec<u8>,
}

impl signature::Verifier<Vec<u8>> for Es256Verifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(message, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Es256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (EncodingKey, DecodingKey) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        (
            EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).unwrap(),
        )
    }

    #[test]
    fn es256_signatures_are_64_bytes_and_verify_with_the_public_key_only() {
        let (encoding, decoding) = keys();
        let signed = signer(&Algorithm::ES256, &encoding)
            .unwrap()
            .try_sign(b"header.claims")
            .unwrap();
        assert_eq!(signed.len(), 64, "r || s");
        let verify = verifier(&Algorithm::ES256, &decoding).unwrap();
        assert!(verify.verify(b"header.claims", &signed).is_ok());
        assert!(verify.verify(b"header.claimz", &signed).is_err());
        let (_, other) = keys();
        let other = verifier(&Algorithm::ES256, &other).unwrap();
        assert!(other.verify(b"header.claims", &signed).is_err());
    }

    #[test]
    fn every_algorithm_but_es256_is_refused_for_signing_and_verifying() {
        let (encoding, decoding) = keys();
        for algorithm in [
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ] {
            let e = signer(&algorithm, &encoding).err().unwrap();
            assert_eq!(e.kind(), &ErrorKind::InvalidAlgorithm, "{algorithm:?}");
            let e = verifier(&algorithm, &decoding).err().unwrap();
            assert_eq!(e.kind(), &ErrorKind::InvalidAlgorithm, "{algorithm:?}");
        }
        // An HMAC secret is no ES256 key.
        let e = verifier(&Algorithm::ES256, &DecodingKey::from_secret(b"secret"))
            .err()
            .unwrap();
        assert_eq!(e.kind(), &ErrorKind::InvalidKeyFormat);
    }
}
