// What Node proxy agents (https-proxy-agent, undici's ProxyAgent) do: an HTTP CONNECT with
// Proxy-Authorization, then the request over the tunnel.
// Usage: node connect.js PROXY_HOST PROXY_PORT DEST(host:port) USER PASS
const http = require('http');
const [host, port, dest, user, pass] = process.argv.slice(2);
const auth = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
const req = http.request({ host, port, method: 'CONNECT', path: dest, headers: { 'Proxy-Authorization': auth } });
req.setTimeout(5000, () => { console.error('timeout'); process.exit(2); });
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.error('status ' + res.statusCode); process.exit(1); }
  let data = '';
  socket.on('data', (d) => { data += d; });
  socket.on('end', () => { process.stdout.write(data.split('\r\n\r\n')[1] || ''); });
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
});
req.on('error', (e) => { console.error(e.message); process.exit(1); });
req.end();
