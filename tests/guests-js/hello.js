// An edge function in JavaScript (StarlingMonkey's fetch event, as Fastly and Cloudflare
// Workers write them): answers at the edge, or wraps what the service's origin says.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  const pop = request.headers.get("outpost-pop") ?? "unknown";
  if (url.pathname === "/from-origin") {
    // The authority names the backend: `origin` is the service's own upstream, via the cache.
    const upstream = await fetch("http://origin/data");
    const text = await upstream.text();
    return new Response(`origin said: ${text}\n`, {
      status: upstream.status,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  return new Response(`hello from js at ${pop}: ${request.method} ${url.pathname}\n`, {
    headers: { "content-type": "text/plain; charset=utf-8", "x-guest": "componentize-js" },
  });
}
