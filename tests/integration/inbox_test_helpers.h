#pragma once
// Shared by the inbox integration tests: relay.yaml with an inbox, a keep-alive client that posts
// to /inbox/{source}, and Standard Webhooks signatures computed with OpenSSL's one-shot HMAC (not
// relay's Signer, so a signer bug cannot cancel itself out).

#include <fmt/format.h>
#include <httplib.h>

#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "tests/support/hmac_oracle.h"

namespace relay::testing {

// A secret in Standard Webhooks form and its raw key bytes.
inline const std::string kSecretA =
    "whsec_c2VjcmV0LWEtMDEyMzQ1Njc4OWFiY2RlZg==";  // "secret-a-0123456789abcdef"
inline const std::string kKeyA = "secret-a-0123456789abcdef";
inline const std::string kSecretB = "raw-secret-b-used-as-bytes";  // not whsec_: raw key bytes
inline const std::string kKeyB = "raw-secret-b-used-as-bytes";

inline std::string b64(const std::string& bytes) { return openssl_base64(bytes); }

inline std::string sign_v1(const std::string& key, const std::string& id, long long ts,
                           const std::string& body) {
  return openssl_sign_v1(key, id, ts, body);
}

inline long long unix_now() { return static_cast<long long>(std::time(nullptr)); }

using Headers = std::vector<std::pair<std::string, std::string>>;

// webhook-id, webhook-timestamp and a webhook-signature made with `key`.
inline Headers signed_headers(const std::string& key, const std::string& id,
                              const std::string& body, long long ts = unix_now()) {
  return {{"webhook-id", id},
          {"webhook-timestamp", std::to_string(ts)},
          {"webhook-signature", sign_v1(key, id, ts, body)}};
}

struct InboxReply {
  int status = 0;  // 0: no answer
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A keep-alive HTTP client for relay's inbox on 127.0.0.1:port. Not thread-safe: one per thread.
class InboxClient {
 public:
  explicit InboxClient(int port) : client_("127.0.0.1", port) {
    client_.set_keep_alive(true);
    client_.set_tcp_nodelay(true);
    client_.set_connection_timeout(2);
    client_.set_read_timeout(10);
  }

  InboxReply post(const std::string& path, const std::string& body, const Headers& headers,
                  const std::string& content_type = "application/json") {
    httplib::Headers h;
    for (const auto& [k, v] : headers) h.emplace(k, v);
    return to_reply(client_.Post(path.c_str(), h, body, content_type.c_str()));
  }
  InboxReply get(const std::string& path) { return to_reply(client_.Get(path.c_str())); }

 private:
  static InboxReply to_reply(const httplib::Result& res) {
    InboxReply r;
    if (!res) return r;
    r.status = res->status;
    r.body = res->body;
    for (const auto& [k, v] : res->headers) {
      std::string name = k;
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = v;
    }
    return r;
  }
  httplib::Client client_;
};

// One inbox source for inbox_yaml().
struct TestInboxSource {
  std::string name;
  std::vector<std::string> secrets;  // empty: unsigned
  std::string deliver_to;            // empty: claim mode
  std::string extra;                 // more source keys, YAML lines indented by 6 spaces
};

// relay.yaml with only an inbox (no outbox subscriptions) listening on 127.0.0.1:`port`.
inline std::string inbox_yaml(int port, const std::vector<TestInboxSource>& sources,
                              const std::string& inbox_extra = "", const std::string& extra = "") {
  std::string out = fmt::format(
      "database:\n  url: ${{DATABASE_URL}}\n"
      "source:\n  poll_interval: 200ms\n  lease: 3s\n"
      "shutdown_timeout: 10s\n"
      "inbox:\n  listen: 127.0.0.1:{}\n{}  sources:\n",
      port, inbox_extra);
  for (const auto& s : sources) {
    out += fmt::format("    - name: {}\n", s.name);
    if (s.secrets.empty()) {
      out += "      unsigned: true\n";
    } else {
      out += "      signing_secret: [";
      for (size_t i = 0; i < s.secrets.size(); ++i)
        out += fmt::format("{}\"{}\"", i ? ", " : "", s.secrets[i]);
      out += "]\n";
    }
    if (!s.deliver_to.empty()) out += fmt::format("      deliver_to: {}\n", s.deliver_to);
    out += s.extra;
  }
  out += extra;
  return out;
}

}  // namespace relay::testing
