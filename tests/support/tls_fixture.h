#pragma once
// TlsFixture: a throwaway PKI for TLS tests, made with the `openssl` CLI in a TempDir that is
// removed with the fixture. Every file is PEM; keys are unencrypted EC P-256; certificates are
// valid from now for two days.
//
//   TlsFixture pki;
//   FakeConsumer consumer{TlsServerOptions{.cert_file = pki.server_cert(),
//                                          .key_file = pki.server_key()}};
//   ... "tls: {ca_file: " + pki.ca_cert() + "}" ...
//
// Not thread-safe; one owner. The accessors only return paths.

#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace relay::testing {

class TlsFixture {
 public:
  // Generates every file below. Throws std::runtime_error (with openssl's output) if a command
  // fails, e.g. when `openssl` is not on PATH.
  TlsFixture();
  TlsFixture(const TlsFixture&) = delete;
  TlsFixture& operator=(const TlsFixture&) = delete;

  // The test CA (CN "relay test CA").
  std::string ca_cert() const { return file("ca.crt"); }
  // A second CA that signed nothing here: trusting it instead of ca_cert() fails verification.
  std::string other_ca_cert() const { return file("other-ca.crt"); }
  // Server certificate signed by ca_cert() for subjectAltName IP:127.0.0.1 and DNS:localhost.
  std::string server_cert() const { return file("server.crt"); }
  std::string server_key() const { return file("server.key"); }
  // Server certificate signed by ca_cert() for DNS:wrong-host.example only (no IP): a valid chain
  // with the wrong name for 127.0.0.1.
  std::string wrong_host_cert() const { return file("wrong-host.crt"); }
  std::string wrong_host_key() const { return file("wrong-host.key"); }
  // Client certificate (CN "relay test client", extendedKeyUsage clientAuth) signed by ca_cert().
  std::string client_cert() const { return file("client.crt"); }
  std::string client_key() const { return file("client.key"); }

  // Writes `content` to a file in the fixture's directory and returns its path (for deliberately
  // broken PEM files).
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string file(const std::string& name) const { return dir_.path() + "/" + name; }
  // Runs `openssl <args...>` in the fixture's directory; throws with its output if it fails.
  void openssl(const std::vector<std::string>& args) const;
  void make_ca(const std::string& name, const std::string& common_name) const;
  void make_leaf(const std::string& name, const std::string& ca, const std::string& common_name,
                 const std::string& extensions, int serial) const;

  TempDir dir_{"relay-tls."};
};

}  // namespace relay::testing
