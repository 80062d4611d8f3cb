import { describe, expect, test } from "bun:test";
import { listeningAdvice, listeningOn } from "../../../lib/ports/listeners.ts";

/** Read from a container's /proc/net/tcp and tcp6 (Debian trixie): 127.0.0.1:5173, 0.0.0.0:4000 and [::]:3000 listening. */
const PROC = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7469874 1 000000001961e8b3 100 0 0 10 0
   1: 00000000:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7469876 1 0000000061747a46 100 0 0 10 0
   2: 0300120A:0050 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 7469877 1 0000000061747a46 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7469875 1 00000000b2641dc5 100 0 0 10 0
   1: 00000000000000000000000001000000:1B58 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7469878 1 00000000b2641dc5 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7469879 1 00000000b2641dc5 100 0 0 10 0
   3: 0000000000000000FFFF00000300120A:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7469880 1 00000000b2641dc5 100 0 0 10 0
`;

describe("who listens on a bottle's port", () => {
  test("on every address (IPv4 or IPv6), on loopback only, on its own address, or nothing (a connection is not a listener)", () => {
    expect(listeningOn(PROC, 4000)).toBe("reachable");
    expect(listeningOn(PROC, 3000)).toBe("reachable");
    expect(listeningOn(PROC, 5173)).toBe("loopback-only");
    expect(listeningOn(PROC, 7000)).toBe("loopback-only");
    expect(listeningOn(PROC, 8080)).toBe("loopback-only");
    expect(listeningOn(PROC, 9000)).toBe("reachable");
    expect(listeningOn(PROC, 80)).toBe("nothing");
    expect(listeningOn("", 80)).toBe("nothing");
  });

  test("what the user is told: how to make a loopback-only server reachable; nothing when it is", () => {
    expect(listeningAdvice("bottle-x", 5173, "loopback-only")).toBe(
      "the server on bottle-x's port 5173 listens on 127.0.0.1 only, which the relay cannot reach: have it listen on every address (0.0.0.0), e.g. `vite --host`, `next dev -H 0.0.0.0`, `python3 -m http.server --bind 0.0.0.0`",
    );
    expect(listeningAdvice("bottle-x", 3000, "nothing")).toStartWith("nothing listens on bottle-x's port 3000 yet; when you start the server, have it listen on every address");
    expect(listeningAdvice("bottle-x", 3000, "reachable")).toBeUndefined();
  });
});
