/*
 * Inside the token module: the public keys (a PEM file, JWKS documents), the algorithms and their signature
 * checks, shared by token.c (tokens, claims, the verifier) and token_keys.c (keys and signatures).
 *
 * Debian 12 ships libjwt 1.10, which has no PS* algorithms and no JWKS, and compares HMACs as text with an
 * early exit; verification is therefore built on OpenSSL 3's EVP interface directly, and libjwt only signs.
 */
#ifndef RT_CORE_TOKEN_PRIVATE_H
#define RT_CORE_TOKEN_PRIVATE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stddef.h>

/** What a key is, and so which algorithms may use it. */
typedef enum { RT_TOKEN_KEY_HMAC, RT_TOKEN_KEY_RSA, RT_TOKEN_KEY_EC } rt_token_key_kind_t;

/** One JWS algorithm (RFC 7518 section 3). */
typedef struct st_rt_token_alg_t {
    const char *name;          /**< "RS256" */
    rt_token_key_kind_t kind;  /**< the kind of key it needs */
    const EVP_MD *(*md)(void); /**< the digest: EVP_sha256 */
    int pss;                   /**< RSASSA-PSS (PS*) rather than PKCS #1 v1.5 (RS*) */
    int ec_bits;               /**< ES*: the curve size; r and s are ec_bits / 8 bytes each in the signature */
} rt_token_alg_t;

/** A public key from the PEM file (kid and alg NULL) or a JWKS document. */
typedef struct st_rt_token_key_t {
    EVP_PKEY *pkey;
    rt_token_key_kind_t kind; /**< RSA or EC */
    int ec_bits;              /**< EC: 256 (P-256) or 384 (P-384) */
    char *kid;                /**< the JWK's "kid", or NULL */
    char *alg;                /**< the JWK's "alg", or NULL: then any algorithm of the key's kind */
    char *use;                /**< the JWK's "use", or NULL: then "sig" */
} rt_token_key_t;

/** An immutable set of keys shared by the verifier and the verifications in flight (reference counted). */
typedef struct st_rt_token_keyset_t {
    atomic_size_t refs;
    size_t n;
    rt_token_key_t keys[];
} rt_token_keyset_t;

/** Decodes unpadded base64url (JWS, JWK); returns the decoded length, or -1. out needs len * 3 / 4 + 1 bytes. */
long rt__token_b64url_decode(const char *s, size_t len, unsigned char *out);

/** The algorithm named `name`, or NULL (also for "none"). */
const rt_token_alg_t *rt__token_alg(const char *name);

/**
 * Reads a PEM public key (SubjectPublicKeyInfo, or an RSA PUBLIC KEY) from `path` into *key: RSA of at least 2048
 * bits, or EC on P-256 or P-384. Returns 0, or RT_EINVAL with a message naming the file.
 */
int rt__token_key_load_pem(const char *path, rt_token_key_t *key, char *err, size_t errlen);

/** Reads a PEM private key (for signing) into *key, with the same rules as public keys. 0, or RT_EINVAL. */
int rt__token_key_read_private(const char *pem, rt_token_key_t *key, char *err, size_t errlen);

/**
 * Parses a JWKS document ({"keys":[...]}) into a new set (refs 1). RSA and EC signing keys are kept; keys of
 * other types ("oct", "OKP") are skipped, a malformed RSA or EC key fails the document. Returns 0, or RT_EINVAL
 * with a message (no usable key at all is an error).
 */
int rt__token_keyset_parse(const char *json, size_t len, rt_token_keyset_t **out, char *err, size_t errlen);

/** Takes one more reference. */
void rt__token_keyset_retain(rt_token_keyset_t *set);
/** Drops one reference; the last frees the set (NULL allowed). */
void rt__token_keyset_release(rt_token_keyset_t *set);

/** Frees what a key owns and zeroes it. */
void rt__token_key_dispose(rt_token_key_t *key);

/**
 * Whether `key` may verify tokens signed with `alg`: the same kind (and curve), and the JWK's "alg" and "use",
 * when present, agree. Returns NULL, or why not.
 */
const char *rt__token_key_refuses(const rt_token_key_t *key, const rt_token_alg_t *alg);

/** Checks an HMAC signature in constant time. Returns 0 when it matches. */
int rt__token_check_hmac(const rt_token_alg_t *alg, const unsigned char *secret, size_t secret_len, const char *data,
                         size_t data_len, const unsigned char *sig, size_t sig_len);

/** Checks an RSA (PKCS #1 v1.5 or PSS) or ECDSA (raw r||s) signature with a key that rt__token_key_refuses accepts. */
int rt__token_check_pkey(const rt_token_alg_t *alg, const rt_token_key_t *key, const char *data, size_t data_len,
                         const unsigned char *sig, size_t sig_len);

#endif
