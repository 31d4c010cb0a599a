// Signing keys and signature verification over OpenSSL 3, in the three schemes TUF uses:
//   ed25519               keytype "ed25519", public key as 64 lowercase hex characters
//   ecdsa-sha2-nistp256   keytype "ecdsa" (or "ecdsa-sha2-nistp256"), PEM SubjectPublicKeyInfo,
//                         DER signature over SHA-256
//   rsassa-pss-sha256     keytype "rsa", PEM SubjectPublicKeyInfo, MGF1-SHA256; any salt length
//                         is accepted when verifying, signing uses the digest length
// Pure: no files, no clock. Objects are immutable after creation and safe to share between
// threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace qp::crypto {

enum class Scheme { kEd25519, kEcdsaP256, kRsaPss };

// "ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256".
std::string_view SchemeName(Scheme scheme);
// The keytype a key of this scheme is written with ("ed25519", "ecdsa", "rsa").
std::string_view SchemeKeyType(Scheme scheme);

// A public key as TUF metadata writes it.
struct PublicKeyDescription {
  std::string keytype;
  std::string scheme;
  std::string public_value;  // keyval.public
};

// A parsed public key that verifies signatures.
class VerifyingKey {
 public:
  // kUnsupported for an unknown keytype/scheme pair; kCorrupt when the key bytes do not parse
  // or do not match the keytype (an RSA PEM under keytype "ecdsa", say).
  static Result<std::shared_ptr<const VerifyingKey>> Parse(const PublicKeyDescription& key);

  ~VerifyingKey();
  VerifyingKey(const VerifyingKey&) = delete;
  VerifyingKey& operator=(const VerifyingKey&) = delete;

  // Ok when `signature` is a valid signature of `message`; kVerificationFailed otherwise
  // (including a signature of the wrong size or encoding).
  Status Verify(std::span<const std::uint8_t> message,
                std::span<const std::uint8_t> signature) const;

  Scheme scheme() const { return scheme_; }
  // The decoded key as DER SubjectPublicKeyInfo: the same for every spelling of one key
  // (hex case, PEM line breaks, keytype aliases), so that distinct keys are counted by it.
  const std::vector<std::uint8_t>& identity() const { return identity_; }

 private:
  struct Impl;
  VerifyingKey(Scheme scheme, std::unique_ptr<Impl> impl);
  Scheme scheme_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::uint8_t> identity_;
};

// A private key. Never printed or logged; ToPem() is for writing key files only.
class SigningKey {
 public:
  // A fresh random key (RSA keys are 3072 bits).
  static Result<SigningKey> Generate(Scheme scheme);
  // From an unencrypted PKCS#8 PEM; the scheme follows from the key type (EC keys must be
  // on P-256). kCorrupt when the PEM does not parse, kUnsupported for other key types.
  static Result<SigningKey> FromPem(std::string_view pem);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  std::string ToPem() const;
  PublicKeyDescription Public() const;
  Result<std::vector<std::uint8_t>> Sign(std::span<const std::uint8_t> message) const;
  Scheme scheme() const { return scheme_; }

 private:
  struct Impl;
  SigningKey(Scheme scheme, std::unique_ptr<Impl> impl);
  Scheme scheme_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qp::crypto
