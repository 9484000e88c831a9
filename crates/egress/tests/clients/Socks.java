// A JDBC-style client: java.net's own SOCKS5 implementation, with user/password from an
// Authenticator (how `socksProxyHost` plus credentials work for JDBC drivers).
// Usage: java Socks.java PROXY_HOST PROXY_PORT DEST_HOST DEST_PORT [USER PASS]
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;

public class Socks {
    public static void main(String[] args) throws Exception {
        if (args.length == 6) {
            final String user = args[4], pass = args[5];
            Authenticator.setDefault(new Authenticator() {
                protected PasswordAuthentication getPasswordAuthentication() {
                    return new PasswordAuthentication(user, pass.toCharArray());
                }
            });
        }
        Proxy proxy = new Proxy(Proxy.Type.SOCKS, new InetSocketAddress(args[0], Integer.parseInt(args[1])));
        try (Socket s = new Socket(proxy)) {
            s.setSoTimeout(5000);
            s.connect(new InetSocketAddress(args[2], Integer.parseInt(args[3])), 5000);
            OutputStream out = s.getOutputStream();
            out.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            String resp = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            System.out.print(resp.substring(resp.indexOf("\r\n\r\n") + 4));
        }
    }
}
