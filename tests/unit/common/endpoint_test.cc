#include "relay/common/endpoint.h"

#include <catch2/catch.hpp>
#include <string>

using relay::ErrorCode;
using relay::parse_endpoint;

TEST_CASE("parse_endpoint splits http and https URLs, with 80 and 443 as default ports",
          "[common]") {
  struct Row {
    const char* url;
    bool tls;
    const char* host;
    int port;
    const char* path;
  };
  const Row rows[] = {
      {"http://example.com", false, "example.com", 80, "/"},
      {"https://example.com", true, "example.com", 443, "/"},
      {"HTTPS://Example.com:8443/in?x=1", true, "Example.com", 8443, "/in?x=1"},
      {"https://example.com?x=1", true, "example.com", 443, "/?x=1"},
      {"https://[::1]/h", true, "::1", 443, "/h"},
      {"https://127.0.0.1:9/", true, "127.0.0.1", 9, "/"},
      {"http://a-b.example_c/x", false, "a-b.example_c", 80, "/x"},
      {"http://127.0.0.1:9/hooks/in?x=1&y=%20", false, "127.0.0.1", 9, "/hooks/in?x=1&y=%20"},
  };
  for (const auto& r : rows) {
    INFO(r.url);
    const auto ep = parse_endpoint(r.url);
    REQUIRE(ep.has_value());
    CHECK(ep->url == r.url);  // kept as written, for messages and status
    CHECK(ep->tls == r.tls);
    CHECK(ep->host == r.host);
    CHECK(ep->port == r.port);
    CHECK(ep->path == r.path);
  }
}

TEST_CASE("parse_endpoint refuses what is not http(s)://host[:port][/path]", "[common]") {
  for (const char* bad : {"",
                          "ftp://example.com/",
                          "https//example.com/",
                          "https:/example.com/",
                          "httpss://a/",
                          "https://",
                          "https://user@example.com/",
                          "example.com/hook",
                          "http://",
                          "http:///path",
                          "http://user:pw@example.com/",
                          "http://example.com:/x",
                          "http://example.com:0/",
                          "http://example.com:65536/",
                          "http://example.com:8o/",
                          "http://exa mple.com/",
                          "http://example.com/a b",
                          "http://example.com/#frag",
                          "http://[::1/",
                          "http://[zz::1]/",
                          "http://[]/",
                          "http://[::1]x/",
                          "http://bill!ing/",
                          "http://billing/\xc3\xa9v"}) {
    INFO("endpoint \"" << bad << "\"");
    const auto ep = parse_endpoint(bad);
    REQUIRE_FALSE(ep.has_value());
    CHECK(ep.error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("parse_endpoint never quotes the URL in its messages", "[common]") {
  for (const char* bad : {"http://alice:s3cret@example.com/", "ftp://alice:s3cret@example.com/",
                          "http://s3cret.example.com:99999/", "http://example.com/s3cret#x"}) {
    INFO(bad);
    const auto ep = parse_endpoint(bad);
    REQUIRE_FALSE(ep.has_value());
    CHECK_THAT(ep.error().message, !Catch::Contains("s3cret"));
  }
}
