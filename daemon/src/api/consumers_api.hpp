// Consumers over HTTP for workers that are not SQL clients (issue 7). The token must carry
// `roles: ["worker"]`; events are filtered by its claims rule.
//   POST /api/consumers/{name}/claim  {max_count?, member?, size?} -> {"events":[…], "next": position}
//   POST /api/consumers/{name}/ack    {position, member?}           -> {"acked": position}
//   POST /api/consumers/{name}/fail   {position, error, member?}    -> {"failed": position}
// Each request is its own transaction: the SQL consume() locks end with it, so one worker per
// (consumer, member) — split work with member/size. claim does not advance the checkpoint; ack
// (or fail) up to `next` does, so a batch whose events were all filtered out is acked by `next`.
#pragma once
#include "api/common.hpp"

namespace evstream::api {

class ConsumersApi {
 public:
  explicit ConsumersApi(EventsDeps deps) : d_(deps) {}
  void Handle(Call& c);

 private:
  EventsDeps d_;
};

}  // namespace evstream::api
