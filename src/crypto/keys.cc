#include "crypto/keys.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstring>

#include "core/hash.h"

namespace qp::crypto {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

constexpr std::size_t kMaxPemBytes = 16 * 1024;

bool IsP256(EVP_PKEY* pkey) {
  char group[64] = {0};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                     &len) != 1) {
    return false;
  }
  return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

// The scheme of a parsed key, or kUnsupported.
Result<Scheme> SchemeOf(EVP_PKEY* pkey) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_ED25519:
      return Scheme::kEd25519;
    case EVP_PKEY_EC:
      if (!IsP256(pkey)) return Error(ErrorCode::kUnsupported, "EC key is not on P-256");
      return Scheme::kEcdsaP256;
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(pkey) < 2048) {
        return Error(ErrorCode::kUnsupported, "RSA key shorter than 2048 bits");
      }
      return Scheme::kRsaPss;
    default:
      return Error(ErrorCode::kUnsupported, "unsupported key type");
  }
}

// Prepares `ctx` for signing or verifying with the scheme's digest and padding.
bool InitDigestCtx(EVP_MD_CTX* ctx, EVP_PKEY* pkey, Scheme scheme, bool sign) {
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = scheme == Scheme::kEd25519 ? nullptr : EVP_sha256();
  int rc = sign ? EVP_DigestSignInit(ctx, &pctx, md, nullptr, pkey)
                : EVP_DigestVerifyInit(ctx, &pctx, md, nullptr, pkey);
  if (rc != 1) return false;
  if (scheme == Scheme::kRsaPss) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1) return false;
    if (EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1) return false;
    int salt = sign ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_AUTO;
    if (EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1) return false;
  }
  return true;
}

PkeyPtr ReadPublicPem(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) return nullptr;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return PkeyPtr(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

std::string_view SchemeName(Scheme scheme) {
  switch (scheme) {
    case Scheme::kEd25519:
      return "ed25519";
    case Scheme::kEcdsaP256:
      return "ecdsa-sha2-nistp256";
    case Scheme::kRsaPss:
      return "rsassa-pss-sha256";
  }
  return "?";
}

std::string_view SchemeKeyType(Scheme scheme) {
  switch (scheme) {
    case Scheme::kEd25519:
      return "ed25519";
    case Scheme::kEcdsaP256:
      return "ecdsa";
    case Scheme::kRsaPss:
      return "rsa";
  }
  return "?";
}

struct VerifyingKey::Impl {
  PkeyPtr pkey;
};

VerifyingKey::VerifyingKey(Scheme scheme, std::unique_ptr<Impl> impl)
    : scheme_(scheme), impl_(std::move(impl)) {}
VerifyingKey::~VerifyingKey() = default;

Result<std::shared_ptr<const VerifyingKey>> VerifyingKey::Parse(const PublicKeyDescription& key) {
  Scheme scheme;
  if (key.keytype == "ed25519" && key.scheme == "ed25519") {
    scheme = Scheme::kEd25519;
  } else if ((key.keytype == "ecdsa" || key.keytype == "ecdsa-sha2-nistp256") &&
             key.scheme == "ecdsa-sha2-nistp256") {
    scheme = Scheme::kEcdsaP256;
  } else if (key.keytype == "rsa" && key.scheme == "rsassa-pss-sha256") {
    scheme = Scheme::kRsaPss;
  } else {
    return Error(ErrorCode::kUnsupported,
                 "unsupported key type/scheme " + key.keytype + "/" + key.scheme);
  }
  PkeyPtr pkey;
  if (scheme == Scheme::kEd25519) {
    if (key.public_value.size() != 64) {
      return Error(ErrorCode::kCorrupt, "ed25519 public key is not 64 hex characters");
    }
    auto raw = HexDecode(key.public_value);
    if (!raw.ok()) return Error(ErrorCode::kCorrupt, "ed25519 public key is not hex");
    pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw->data(), raw->size()));
  } else {
    pkey = ReadPublicPem(key.public_value);
  }
  if (!pkey) return Error(ErrorCode::kCorrupt, "public key does not parse");
  auto actual = SchemeOf(pkey.get());
  if (!actual.ok() || *actual != scheme) {
    return Error(ErrorCode::kCorrupt, "public key does not match keytype " + key.keytype);
  }
  int der_length = i2d_PUBKEY(pkey.get(), nullptr);
  if (der_length <= 0) return Error(ErrorCode::kCorrupt, "public key does not encode");
  std::vector<std::uint8_t> der(static_cast<std::size_t>(der_length));
  unsigned char* out = der.data();
  if (i2d_PUBKEY(pkey.get(), &out) != der_length) {
    return Error(ErrorCode::kCorrupt, "public key does not encode");
  }
  auto impl = std::make_unique<Impl>();
  impl->pkey = std::move(pkey);
  auto parsed = std::shared_ptr<VerifyingKey>(new VerifyingKey(scheme, std::move(impl)));
  parsed->identity_ = std::move(der);
  return std::shared_ptr<const VerifyingKey>(std::move(parsed));
}

Status VerifyingKey::Verify(std::span<const std::uint8_t> message,
                            std::span<const std::uint8_t> signature) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || !InitDigestCtx(ctx.get(), impl_->pkey.get(), scheme_, /*sign=*/false)) {
    return Error(ErrorCode::kInternal, "cannot set up signature verification");
  }
  if (EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                       message.size()) != 1) {
    return Error(ErrorCode::kVerificationFailed, "bad signature");
  }
  return OkStatus();
}

struct SigningKey::Impl {
  PkeyPtr pkey;
};

SigningKey::SigningKey(Scheme scheme, std::unique_ptr<Impl> impl)
    : scheme_(scheme), impl_(std::move(impl)) {}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

Result<SigningKey> SigningKey::Generate(Scheme scheme) {
  PkeyPtr pkey;
  switch (scheme) {
    case Scheme::kEd25519:
      pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
      break;
    case Scheme::kEcdsaP256:
      pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
      break;
    case Scheme::kRsaPss:
      pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(3072)));
      break;
  }
  if (!pkey) return Error(ErrorCode::kInternal, "key generation failed");
  auto impl = std::make_unique<Impl>();
  impl->pkey = std::move(pkey);
  return SigningKey(scheme, std::move(impl));
}

Result<SigningKey> SigningKey::FromPem(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) return Error(ErrorCode::kTooLarge, "private key file too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error(ErrorCode::kInternal, "out of memory");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) return Error(ErrorCode::kCorrupt, "private key does not parse (PKCS#8 PEM expected)");
  QP_ASSIGN_OR_RETURN(Scheme scheme, SchemeOf(pkey.get()));
  auto impl = std::make_unique<Impl>();
  impl->pkey = std::move(pkey);
  return SigningKey(scheme, std::move(impl));
}

std::string SigningKey::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    return {};
  }
  return BioToString(bio.get());
}

PublicKeyDescription SigningKey::Public() const {
  PublicKeyDescription out;
  out.keytype = std::string(SchemeKeyType(scheme_));
  out.scheme = std::string(SchemeName(scheme_));
  if (scheme_ == Scheme::kEd25519) {
    std::uint8_t raw[32];
    std::size_t len = sizeof(raw);
    EVP_PKEY_get_raw_public_key(impl_->pkey.get(), raw, &len);
    out.public_value = HexEncode(std::span<const std::uint8_t>(raw, len));
  } else {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (bio && PEM_write_bio_PUBKEY(bio.get(), impl_->pkey.get()) == 1) {
      out.public_value = BioToString(bio.get());
    }
  }
  return out;
}

Result<std::vector<std::uint8_t>> SigningKey::Sign(std::span<const std::uint8_t> message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || !InitDigestCtx(ctx.get(), impl_->pkey.get(), scheme_, /*sign=*/true)) {
    return Error(ErrorCode::kInternal, "cannot set up signing");
  }
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1) {
    return Error(ErrorCode::kInternal, "signing failed");
  }
  std::vector<std::uint8_t> sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1) {
    return Error(ErrorCode::kInternal, "signing failed");
  }
  sig.resize(len);
  return sig;
}

}  // namespace qp::crypto
