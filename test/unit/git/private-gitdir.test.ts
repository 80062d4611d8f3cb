import { describe, expect, test } from "bun:test";
import { gitlinkPaths, parseConfigList, withoutCredentials } from "../../../lib/git/host-repo.ts";
import { HOST_OBJECTS_MOUNT, privateConfig, privateGitDirEntries } from "../../../lib/git/private-gitdir.ts";
import { branchBase } from "../../../lib/git/bottle-branch.ts";
import { submoduleAncestors } from "../../../lib/git/workspace-git.ts";

describe("what a bottle sees of the host's git config", () => {
  test("URLs lose their credentials: all userinfo for http(s), the password elsewhere", () => {
    expect(withoutCredentials("https://user:tok@github.com/o/r.git")).toBe("https://github.com/o/r.git");
    expect(withoutCredentials("https://ghp_abc@github.com/o/r.git")).toBe("https://github.com/o/r.git");
    expect(withoutCredentials("ssh://git:pw@host:2222/r.git")).toBe("ssh://git@host:2222/r.git");
    expect(withoutCredentials("ssh://git@host/r.git")).toBe("ssh://git@host/r.git");
    expect(withoutCredentials("git@github.com:o/r.git")).toBe("git@github.com:o/r.git");
    expect(withoutCredentials("/srv/repo.git")).toBe("/srv/repo.git");
  });

  test("git config -z records and ls-files -s gitlinks", () => {
    expect(parseConfigList("remote.origin.url\nhttps://x/r\0core.autocrlf\ninput\0")).toEqual([
      ["remote.origin.url", "https://x/r"],
      ["core.autocrlf", "input"],
    ]);
    expect(gitlinkPaths(`100644 ${"a".repeat(40)} 0\tREADME.md\x00160000 ${"b".repeat(40)} 0\tlib/sub\0`)).toEqual(["lib/sub"]);
  });

  test("the private config: a plain repository, sha256 kept, subsections quoted, values quoted", () => {
    const text = privateConfig({
      objectFormat: "sha256",
      config: [
        ["remote.My.Origin.url", 'https://x/"r"'],
        ["branch.main.merge", "refs/heads/main"],
        ["extensions.objectformat", "sha256"],
      ],
    });
    expect(text).toBe(
      '[core]\n\trepositoryformatversion = 1\n\tbare = false\n\tlogallrefupdates = true\n[extensions]\n\tobjectformat = sha256\n[remote "My.Origin"]\n\turl = "https://x/\\"r\\""\n[branch "main"]\n\tmerge = "refs/heads/main"\n',
    );
  });

  test("the private git dir borrows the host's objects and is the agent's; without history it is an empty directory", () => {
    const repo = { top: "/p", gitDir: "/p/.git", commonDir: "/p/.git", objectFormat: "sha1", head: "ref: refs/heads/main", refs: [`${"a".repeat(40)} refs/heads/main`], config: [], submodules: [] };
    const entries = privateGitDirEntries("/workspace/.git", repo, { sharedIndexes: [], index: new Uint8Array([1, 2]) }, 501, 20);
    expect(entries.find((entry) => entry.path === "/workspace/.git/objects/info/alternates")?.content).toBe(`${HOST_OBJECTS_MOUNT}\n`);
    expect(entries.find((entry) => entry.path === "/workspace/.git/packed-refs")?.content).toContain(`${"a".repeat(40)} refs/heads/main\n`);
    expect(entries.every((entry) => entry.uid === 501 && entry.gid === 20)).toBe(true);
    expect(entries.map((entry) => entry.path)).not.toContain("/workspace/.git/hooks");
    expect(privateGitDirEntries("/workspace/.git", undefined, { sharedIndexes: [] }, 501, 20)).toEqual([
      { path: "/workspace/.git", type: "dir", mode: 0o755, uid: 501, gid: 20 },
    ]);
  });
});

describe("names and mount points", () => {
  test("the bottle's branch is a valid ref name", () => {
    expect(branchBase("bottle-dev")).toBe("bottle/dev");
    expect(branchBase("bottle-a..b.lock")).toBe("bottle/a.b");
    expect(branchBase("bottle-")).toBe("bottle/work");
  });

  test("every directory down to a submodule, outermost first, once", () => {
    expect(submoduleAncestors([{ path: "a/b/c", gitfile: true }, { path: "a/d", gitfile: false }, { path: "e", gitfile: true }])).toEqual(["a", "e", "a/b", "a/d", "a/b/c"]);
  });
});
