# Real WebDAV clients on the cluster's DAV space (SPEC section 8, "Tests"):
# three nodes with `DAV clusterstorage` behind the round-robin front
# (t/lib/CSFront.pm), so that consecutive requests of a client land on
# different nodes.
#
#   1. rclone (webdav backend, vendor "other", configured only through the
#      environment, an empty config file in the state directory): copy a
#      tree into a fresh collection (nested directories, a few hundred
#      small files, two of about 1 MiB, an empty one, names with spaces,
#      UTF-8 and URL-special characters), `rclone check --download` finds
#      no difference, a second copy sends nothing, `rclone lsf -R` lists
#      exactly the tree; `rclone purge` of a subdirectory, after which
#      every node, asked directly, answers 404 for its files and 200 with
#      the same bytes for all the others.
#   2. davfs2, mounted by this (unprivileged) user through an fstab entry
#      with the option `user` that scripts/test.sh writes as root (with
#      mount.davfs setuid and the user in group davfs2, see there):
#      cp -r, mkdir, mv of a file and of a directory, rm, rm -r, an append;
#      unmount, check every node over plain HTTP (new names 200 with the
#      bytes, old and removed names 404), remount with an empty cache, and
#      `diff -r` against the same operations done on a local directory is
#      empty.  Without the fstab entry (the suite not started as root by
#      scripts/test.sh) this part FAILS and says what is missing.
#
# Every command runs under timeout(1); nothing on the mount is touched by
# this process itself (a hung FUSE call would hang the test), only by
# bounded child processes.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;
use CSFront;
use Digest::SHA ();
use File::Path qw(make_path);
use File::Find ();
use IO::Socket::INET ();

my $STATE = "$ENV{CS_STATE_DIR}/t51";
my $RCLONE = '/usr/bin/rclone';
my $MOUNT_DAVFS = '/usr/sbin/mount.davfs';
make_path($STATE);

# ---- helpers -------------------------------------------------------------

# run(SECONDS, CMD, ARGS...) -> (exit status, stdout and stderr together);
# 124 when timeout(1) ended it.
sub run {
    my ($secs, @cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec 'timeout', '-k', '5', $secs, @cmd;
        die "exec timeout: $!";
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

sub tail_of {
    my ($text, $n) = @_;
    my @l = split /\n/, $text // '';
    @l = @l[-$n .. -1] if @l > $n;
    return join "\n", @l;
}

# A deterministic file body: text, or (bytes => N) pseudo-random bytes.
sub body {
    my ($seed, $bytes) = @_;
    return "$seed\n" . ("line of $seed\n" x (length($seed) % 7)) unless $bytes;
    my $b = '';
    my $i = 0;
    $b .= Digest::SHA::sha256("$seed/" . $i++) while length $b < $bytes;
    return substr $b, 0, $bytes;
}

# write_tree(DIR, { REL => BYTES }) writes the files (and their
# directories) under DIR.
sub write_tree {
    my ($dir, $files) = @_;
    for my $rel (sort keys %$files) {
        my ($d) = "$dir/$rel" =~ m{^(.*)/};
        make_path($d);
        open my $fh, '>:raw', "$dir/$rel" or die "$dir/$rel: $!";
        print $fh $files->{$rel};
        close $fh or die "$dir/$rel: $!";
    }
}

# read_tree(DIR) -> ({ REL => BYTES } of its files, [ its directories ]),
# names relative to DIR (a local directory, never the mount).
sub read_tree {
    my ($dir) = @_;
    my (%f, @d);
    File::Find::find({ no_chdir => 1, wanted => sub {
        return if $_ eq $dir;
        my $rel = substr $_, length($dir) + 1;
        if (-d $_) { push @d, $rel; return }
        open my $fh, '<:raw', $_ or die "$_: $!";
        local $/;
        $f{$rel} = <$fh> // '';
    } }, $dir);
    return (\%f, [ sort @d ]);
}

# The directories that hold the files REL... (every ancestor).
sub dirs_of {
    my %d;
    for my $rel (@_) {
        my @p = split m{/}, $rel;
        pop @p;
        $d{ join '/', @p[0 .. $_] } = 1 for 0 .. $#p;
    }
    return sort keys %d;
}

# A path of bytes as a URL path: everything but unreserved characters and
# "/" percent-encoded.
sub url_path {
    my ($p) = @_;
    $p =~ s{([^A-Za-z0-9\-._~/])}{sprintf '%%%02X', ord $1}ge;
    return $p;
}

# check_nodes(BASE, { REL => BYTES } expected, [ REL gone ], WHAT): on
# every node, directly (not through the front), each expected file is 200
# with its bytes and each gone one 404.  One assertion per node and kind.
my @nodes;
sub check_nodes {
    my ($base, $want, $gone, $what) = @_;
    for my $n (@nodes) {
        my @bad;
        for my $rel (sort keys %$want) {
            my $r = req(GET => $n->url . url_path("$base/$rel"));
            push @bad, "$rel: " . $r->code
                . ($r->code == 200 ? ' with other bytes ('
                   . length($r->content) . ' bytes, want '
                   . length($want->{$rel}) . ')' : '')
                unless $r->code == 200 && $r->content eq $want->{$rel};
        }
        ok !@bad, "$what: node " . $n->name . ' serves all '
            . scalar(keys %$want) . ' files with their bytes'
            or diag join "\n", grep { defined } @bad[0 .. 19];
        next unless @$gone;
        my @there;
        for my $rel (@$gone) {
            my $r = req(GET => $n->url . url_path("$base/$rel"));
            push @there, "$rel: " . $r->code unless $r->code == 404;
        }
        ok !@there, "$what: node " . $n->name . ' answers 404 for all '
            . scalar(@$gone) . ' removed or old names'
            or diag join "\n", grep { defined } @there[0 .. 19];
    }
}

# gone_dirs_404(BASE, [ DIR ], WHAT): a PROPFIND of each (removed)
# collection is 404 on every node.
sub gone_dirs_404 {
    my ($base, $dirs, $what) = @_;
    for my $n (@nodes) {
        my @there = map { "$_: " . $_->[1] }
                    grep { $_->[1] != 404 }
                    map { [ $_, req(PROPFIND => $n->url
                                   . url_path("$base/$_/"), undef,
                                   Depth => 0)->code ] } @$dirs;
        ok !@there, "$what: node " . $n->name
            . ' answers 404 to a PROPFIND of ' . join(', ', @$dirs)
            or diag join "\n", @there;
    }
}

# ---- the cluster ---------------------------------------------------------

# The davfs2 fstab entry (scripts/test.sh) fixes the front's port: read it
# first.  davfs_entry() -> { mnt, url, port, conf } or { error => WHY }.
sub davfs_entry {
    my $mnt = $ENV{CS_DAVFS_MNT};
    return { error => 'CS_DAVFS_MNT is not set: the suite was not started'
             . ' by scripts/test.sh as root, which prepares a davfs2'
             . ' mount this user may mount' } unless $mnt;
    open my $fh, '<', '/etc/fstab'
        or return { error => "cannot read /etc/fstab: $!" };
    my @e;
    while (my $l = <$fh>) {
        next if $l =~ /^\s*(?:#|$)/;
        my @f = map { s/\\([0-7]{3})/chr oct $1/ger } split ' ', $l;
        push @e, \@f if @f >= 4 && $f[1] eq $mnt;
    }
    return { error => "/etc/fstab has no entry for $mnt (scripts/test.sh"
             . ' writes one)' } unless @e;
    my ($url, undef, $type, $opts) = @{ $e[0] };
    my %o = map { /^([^=]+)(?:=(.*))?$/ ? ($1 => $2 // 1) : () }
            split /,/, $opts;
    my @why;
    push @why, "type is '$type', not davfs" unless $type eq 'davfs';
    push @why, 'no option user or users' unless $o{user} || $o{users};
    push @why, 'no option conf=' unless $o{conf};
    my ($port) = $url =~ m{^http://127\.0\.0\.1:(\d+)/dav/$};
    push @why, "URL $url is not http://127.0.0.1:PORT/dav/" unless $port;
    return { error => "the fstab entry for $mnt: " . join('; ', @why) }
        if @why;
    return { mnt => $mnt, url => $url, port => $port, conf => $o{conf} };
}
my $davfs = davfs_entry();
if ($davfs->{port}) {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $davfs->{port}, Listen => 1,
                                  ReuseAddr => 1);
    if ($s) { close $s }
    else {
        $davfs = { error => "port $davfs->{port}, which the fstab entry"
                   . ' names, is in use by something else' };
    }
}

my $front;
my $up = eval {
    @nodes = map { CSNode->new($_, dav => 1)->start } qw(v51a v51b v51c);
    $front = CSFront->new('f51', members => [ map { $_->url } @nodes ],
                          $davfs->{port} ? (port => $davfs->{port}) : ())
             ->start;
    1;
};
unless (ok $up, 'three DAV nodes and a balancer in front of them start') {
    diag $@;
    done_testing;
    exit;
}
my $F = $front->url;

# ---- 1. rclone -----------------------------------------------------------

sub rclone_tree {
    my %t;
    $t{'README.txt'} = body('readme');
    $t{'empty.txt'} = '';
    $t{ sprintf 'docs/note-%03d.txt', $_ } = body("note $_") for 1 .. 120;
    $t{ sprintf 'docs/nested/deeper/deepest/leaf-%02d.txt', $_ }
        = body("leaf $_") for 1 .. 10;
    for my $s (1 .. 10) {
        $t{ sprintf 'data/set-%02d/item-%02d.csv', $s, $_ }
            = body("set $s item $_") for 1 .. 15;
    }
    $t{'with space/a file with spaces.txt'} = body('spaces');
    $t{'with space/sub dir/another one.txt'} = body('another');
    $t{'ünïcödé/日本語のファイル.txt'} = body('japanese');
    $t{'ünïcödé/Ärger über Öl.txt'} = body('german');
    $t{'ünïcödé/emoji 😀 🎉.txt'} = body('emoji');
    $t{'ünïcödé/中文目录/文件.txt'} = body('chinese');
    $t{'odd/100% sure.txt'} = body('percent');
    $t{'odd/a+b=c.txt'} = body('plus');
    $t{"odd/it's & more.txt"} = body('amp');
    $t{'odd/hash#tag.txt'} = body('hash');
    $t{'odd/semi;colon.txt'} = body('semi');
    $t{'odd/brackets [1] (2) {3}.txt'} = body('brackets');
    $t{'big/one.bin'} = body('one', 1 << 20);
    $t{'big/two.bin'} = body('two', (1 << 20) + 4097);
    $t{ sprintf 'purge-me/p-%02d.txt', $_ } = body("p $_") for 1 .. 30;
    $t{ sprintf 'purge-me/inner/q-%02d.txt', $_ } = body("q $_") for 1 .. 20;
    $t{'purge-me/inner/deep er/r.txt'} = body('r');
    return \%t;
}

# rclone(SECONDS, ARGS...) -> (exit status, output), the remote "cs:" (the
# DAV space) configured purely by the environment; its config file and
# cache live in the test's state directory (nothing in $HOME).  The tree
# goes to a fresh collection, $R: rclone's webdav backend never creates
# the root of its URL (it takes it to exist), but it makes the collections
# under it.
my $rcoll = unique_key('rclone');
my $R = "cs:$rcoll";
sub rclone {
    my ($secs, @args) = @_;
    local %ENV = (%ENV,
        RCLONE_CONFIG_CS_TYPE   => 'webdav',
        RCLONE_CONFIG_CS_URL    => "$F/dav",
        RCLONE_CONFIG_CS_VENDOR => 'other',
        HOME => "$STATE/home", XDG_CONFIG_HOME => "$STATE/home/.config",
        XDG_CACHE_HOME => "$STATE/home/.cache");
    # --retries 1 --low-level-retries 1: a request the server fails is not
    # quietly tried again.
    return run($secs, $RCLONE, '--config', "$STATE/rclone.conf",
               '--cache-dir', "$STATE/rclone-cache", '--retries', '1',
               '--low-level-retries', '1', '--stats', '0',
               '--contimeout', '10s', '--timeout', '30s', @args);
}

RCLONE: {
    unless (ok -x $RCLONE, "rclone is installed ($RCLONE)") {
        diag 'scripts/deps.sh installs it (Debian package rclone)';
        last RCLONE;
    }
    make_path("$STATE/home");
    open my $cf, '>', "$STATE/rclone.conf" or die $!;   # empty
    close $cf;
    my $tree = rclone_tree();
    my $src = "$STATE/rclone-src";
    write_tree($src, $tree);
    my @dirs = dirs_of(keys %$tree);
    diag sprintf 'rclone: a tree of %d files in %d directories to %s/dav/%s',
        scalar(keys %$tree), scalar(@dirs), $F, $rcoll;

    my ($rc, $out) = rclone(120, 'copy', '--transfers', '4', $src, $R);
    ok $rc == 0 && $out !~ /\bERROR\b/, 'rclone copy of the tree succeeds'
        or diag "exit $rc:\n" . tail_of($out, 40);

    ($rc, $out) = rclone(120, 'check', '--download', $src, $R);
    ok $rc == 0 && $out =~ /\b0 differences found/,
        'rclone check --download: no difference'
        or diag "exit $rc:\n" . tail_of($out, 40);
    like $out, qr/\b${\ scalar keys %$tree} matching files/,
        'rclone check --download: every file matches';

    # Nothing changed: a second copy finds everything there (rclone -v
    # logs "NAME: Copied ..." for each file it sends).
    ($rc, $out) = rclone(120, '-v', 'copy', $src, $R);
    ok $rc == 0 && $out !~ /: Copied /,
        'a second rclone copy sends nothing'
        or diag "exit $rc:\n" . tail_of(join("\n", grep { /Copied|ERROR/ }
                                            split /\n/, $out), 20);

    my $want_lsf = [ sort((map { "$_/" } @dirs), keys %$tree) ];
    ($rc, $out) = rclone(60, 'lsf', '-R', $R);
    is $rc, 0, 'rclone lsf -R succeeds' or diag tail_of($out, 20);
    is_deeply [ sort split /\n/, $out ], $want_lsf,
        'rclone lsf -R lists exactly the tree';

    ($rc, $out) = rclone(60, 'purge', "$R/purge-me");
    ok $rc == 0 && $out !~ /\bERROR\b/, 'rclone purge of purge-me succeeds'
        or diag "exit $rc:\n" . tail_of($out, 40);

    my @gone = sort grep { m{^purge-me/} } keys %$tree;
    my %rest = map { $_ => $tree->{$_} } grep { !m{^purge-me/} } keys %$tree;
    check_nodes("/dav/$rcoll", \%rest, \@gone, 'after rclone purge');
    gone_dirs_404("/dav/$rcoll", [ 'purge-me', 'purge-me/inner' ],
                  'after rclone purge');

    ($rc, $out) = rclone(60, 'lsf', '-R', $R);
    is_deeply [ sort split /\n/, $out ],
        [ grep { !m{^purge-me/} } @$want_lsf ],
        'rclone lsf -R after the purge: the tree without purge-me'
        or diag "exit $rc";
    spread(qr{^/dav/\Q$rcoll\E(?:/|$)}, 'rclone');
}

# ---- 2. davfs2 -----------------------------------------------------------

# mounted(DIR) -> true if DIR is a mount point now (/proc/self/mountinfo:
# field 5, octal escapes).
sub mounted {
    my ($dir) = @_;
    open my $fh, '<', '/proc/self/mountinfo' or return 0;
    while (my $l = <$fh>) {
        my $mp = (split ' ', $l)[4] // next;
        $mp =~ s/\\([0-7]{3})/chr oct $1/ge;
        return 1 if $mp eq $dir;
    }
    return 0;
}

# The pid of the mount.davfs daemon of DIR (its pid file is named after
# the mount point), or undef.
sub davfs_pid {
    my ($dir) = @_;
    (my $name = $dir) =~ s{^/}{};
    $name =~ tr{/}{-};
    open my $fh, '<', "/var/run/mount.davfs/$name.pid" or return undef;
    my $pid = <$fh> // '';
    return $pid =~ /^(\d+)/ ? $1 : undef;
}

# The user configuration the fstab entry names (conf=), with its own cache
# directory each time: a remount then reads everything from the server.
sub write_davfs_conf {
    my ($path, $cache) = @_;
    make_path($cache);
    my $secrets = "$STATE/davfs/secrets";
    open my $s, '>', $secrets or die "$secrets: $!";
    print $s "# no credentials: the DAV space needs none\n";
    close $s;
    chmod 0600, $secrets;
    open my $fh, '>', $path or die "$path: $!";
    print $fh <<"EOF";
# davfs2 user configuration of t/51_dav_clients.t (written by the test,
# named by the fstab entry of scripts/test.sh).
# On this kernel davfs2 needs a larger buffer than its default 16 KiB.
buf_size 64
# No prompt: the space needs no credentials, and there are none.
ask_auth 0
secrets $secrets
cache_dir $cache
# LOCK files while they are open for writing (davfs2's default), so the
# cluster's locks are used across the nodes the front picks.
use_locks 1
# Upload a file when it is closed, not 10 s later.
delay_upload 0
EOF
    close $fh or die "$path: $!";
}

my $mount_pid;
# mount_davfs(N) -> true once mounted (as a user: `mount DIR`, the rest
# comes from fstab).
sub mount_davfs {
    my ($n) = @_;
    write_davfs_conf($davfs->{conf}, "$STATE/davfs/cache-$n");
    my ($rc, $out) = run(60, 'mount', $davfs->{mnt});
    my $ok = $rc == 0 && wait_for(30, sub { mounted($davfs->{mnt}) });
    ok $ok, "davfs2: mount $davfs->{mnt} ($davfs->{url}), mount $n"
        or diag "exit $rc: $out";
    $mount_pid = davfs_pid($davfs->{mnt}) if $ok;
    return $ok;
}

# umount_davfs(N) -> true once unmounted and the daemon (which uploads what
# is left first) has ended.
sub umount_davfs {
    my ($n) = @_;
    my ($rc, $out) = run(120, 'umount', $davfs->{mnt});
    my $ok = $rc == 0 && wait_for(60, sub {
        !mounted($davfs->{mnt}) && !($mount_pid && kill 0, $mount_pid)
    });
    ok $ok, "davfs2: umount $davfs->{mnt}, mount $n, and its daemon ends"
        or diag "exit $rc: $out";
    undef $mount_pid if $ok;
    return $ok;
}

END {
    # A mount left behind by a failure (before the nodes stop).
    if ($davfs && $davfs->{mnt} && mounted($davfs->{mnt})) {
        run(60, 'umount', $davfs->{mnt});
        run(10, 'umount', '-l', $davfs->{mnt}) if mounted($davfs->{mnt});
    }
}

sub davfs_tree {
    my %t;
    $t{'a.txt'} = body('davfs a');
    $t{'b.txt'} = body('davfs b');
    $t{'empty.txt'} = '';
    $t{'big.bin'} = body('davfs big', (1 << 20) + 17);
    $t{ sprintf 'keep/k-%02d.txt', $_ } = body("k $_") for 1 .. 20;
    $t{ sprintf 'move-me-dir/m-%02d.txt', $_ } = body("m $_") for 1 .. 10;
    $t{'move-me-dir/sub/s.txt'} = body('s');
    $t{ sprintf 'remove-dir/r-%02d.txt', $_ } = body("r $_") for 1 .. 10;
    $t{'remove-dir/inner/x.txt'} = body('x');
    $t{'ünï cödé/файл 1.txt'} = body('cyrillic');
    $t{'ünï cödé/日本.txt'} = body('nihon');
    $t{'with space/file one.txt'} = body('file one');
    return \%t;
}

# What a user does on the mount, as commands on ROOT (ROOT/tree is made by
# the first): the same commands on a local directory give the expected
# state.
sub davfs_ops {
    my ($root, $src) = @_;
    my $t = "$root/tree";
    return (
        [ 'cp', '-r', $src, $t ],
        [ 'mkdir', "$t/new dir" ],
        [ 'mv', "$t/a.txt", "$t/new dir/a moved.txt" ],
        [ 'mv', "$t/move-me-dir", "$t/moved dir" ],
        [ 'mv', "$t/ünï cödé/файл 1.txt", "$t/ünï cödé/файл 2.txt" ],
        [ 'rm', "$t/b.txt" ],
        [ 'rm', '-r', "$t/remove-dir" ],
        [ 'sh', '-c', 'printf "appended\n" >>"$1"', 'sh', "$t/keep/k-01.txt" ],
    );
}
# The names the operations take away (relative to tree/).
my @DAVFS_GONE_DIRS = ('move-me-dir', 'move-me-dir/sub', 'remove-dir',
                       'remove-dir/inner');

DAVFS: {
    my @why;
    push @why, $davfs->{error} if $davfs->{error};
    push @why, "$MOUNT_DAVFS is missing (Debian package davfs2)"
        unless -x $MOUNT_DAVFS;
    my @st = stat $MOUNT_DAVFS;
    push @why, "$MOUNT_DAVFS is not setuid root (mode "
         . sprintf('%04o', ($st[2] // 0) & 07777) . '): scripts/test.sh'
         . ' sets it with dpkg-statoverride; an override without the'
         . ' setuid bit keeps ordinary users from mounting'
        if @st && !($st[4] == 0 && $st[2] & 04000);
    my $gid = getgrnam('davfs2');
    push @why, defined $gid
        ? 'this process (' . getpwuid($<) . ') is not in group davfs2'
          . ' (scripts/test.sh adds cstest to it)'
        : 'there is no group davfs2 (Debian package davfs2 makes it)'
        unless defined $gid && grep { $_ == $gid } split ' ', $);
    unless (ok !@why, 'davfs2: this unprivileged user can mount the DAV'
                      . ' space (fstab entry with user, setuid mount.davfs,'
                      . ' group davfs2)') {
        diag "davfs2 cannot be mounted here:\n  " . join("\n  ", @why);
        diag 'run the suite as root: `bash scripts/test.sh t/51_dav_clients.t`'
             . ' prepares all three before it switches to cstest';
        last DAVFS;
    }

    my $mnt = $davfs->{mnt};
    my $dcoll = unique_key('davfs');
    my $tree = davfs_tree();
    my $src = "$STATE/davfs/src";
    write_tree($src, $tree);
    my $exp = "$STATE/davfs/expected";
    make_path($exp);
    for my $c (davfs_ops($exp, $src)) {
        my ($rc, $out) = run(30, @$c);
        die "locally: @$c: exit $rc: $out" if $rc;
    }
    my ($want) = read_tree("$exp/tree");
    my @gone = grep { !exists $want->{$_} } sort keys %$tree;

    last DAVFS unless mount_davfs(1);
    my $top = "$mnt/$dcoll";
    my ($rc, $out) = run(30, 'mkdir', $top);
    is $rc, 0, "davfs2: mkdir $dcoll at the top of the mount"
        or diag $out;
    for my $c (davfs_ops($top, $src)) {
        ($rc, $out) = run(120, @$c);
        is $rc, 0, "davfs2: " . join(' ', map { s/^\Q$mnt\E/MNT/r } @$c)
            or diag $out;
    }
    ($rc, $out) = run(60, 'diff', '-r', $exp, $top);
    ok $rc == 0 && $out eq '', 'davfs2: diff -r against the local tree is'
        . ' empty while still mounted' or diag "exit $rc:\n" . tail_of($out, 30);
    last DAVFS unless umount_davfs(1);

    my $base = "/dav/$dcoll/tree";
    check_nodes($base, $want, \@gone, 'after davfs2');
    gone_dirs_404($base, \@DAVFS_GONE_DIRS, 'after davfs2');

    last DAVFS unless mount_davfs(2);
    ($rc, $out) = run(60, 'diff', '-r', $exp, $top);
    ok $rc == 0 && $out eq '', 'davfs2: after a remount with an empty cache,'
        . ' diff -r against the local tree is empty'
        or diag "exit $rc:\n" . tail_of($out, 30);
    last DAVFS unless umount_davfs(2);
    spread(qr{^/dav/\Q$dcoll\E(?:/|$)}, 'davfs2');

    # davfs2 unlocked what it locked: another client can write its files.
    my $r = req(PUT => "$F" . url_path("$base/keep/k-02.txt"), "after\n");
    is $r->code, 204, 'davfs2 left no lock: a PUT without a lock token on'
        . ' a file it wrote is 204' or diag $r->as_string;
}

# spread(QR, WHAT): the front sent the client's requests (paths matching
# QR) to every node; says which methods it sent.
sub spread {
    my ($qr, $what) = @_;
    my (%by, %m);
    if (open my $fh, '<', $front->access_log) {
        while (my $l = <$fh>) {
            # (%U is decoded: a path may hold spaces.)
            my ($st, $meth, $path, $w) = $l =~ /^(\d+) (\S+) (.+) -> (\S+)$/
                or next;
            next unless $path =~ $qr;
            $by{$w}++;
            $m{$meth}++;
        }
    }
    diag "$what sent through the front: "
         . join(', ', map { "$_ $m{$_}" } sort keys %m);
    is scalar(grep { $by{$_} } $front->members), scalar(@nodes),
        "the front sent $what requests to every node" or diag explain \%by;
}

if (!Test::More->builder->is_passing) {
    diag "front member $_->{name}: " . $_->url for @nodes;
    diag "error_log of $_->{name}:\n" . $_->log_tail for @nodes;
    diag "error_log of the front:\n" . $front->log_tail(30);
}

done_testing;
