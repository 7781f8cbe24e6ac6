# The cluster:// stream wrapper (clients/php/ClusterStorage.php, SPEC
# section 9) used the way PHP applications use a local directory (issue
# 12), with real php-cli, through the WebDAV spaces of several nodes.
# t/php/realworld_test.php does each case and prints TAP (every check
# passes on a local directory too: see the comment at its top); each
# "ok"/"not ok" line becomes a test here:
#  1. Flysystem's local adapter: ensureDirectoryExists, write with LOCK_EX,
#     writeStream (w+b), readStream with fseek, listContents, move, copy,
#     delete, deleteDirectory; what node a writes, node b reads;
#  2. WordPress: wp_mkdir_p, wp_unique_filename (file_exists and scandir:
#     name-1.jpg, name-2.jpg ...), uploads with copy() and chmod(0644);
#  3. Laravel's file cache shared by concurrent php processes through two
#     nodes: put with LOCK_EX, get under LOCK_SH, increments under
#     LOCK_EX (4 x 25 end at exactly 100), readers never see a torn or
#     empty value;
#  4. two php processes appending through two nodes (FILE_APPEND with and
#     without LOCK_EX, an open 'a' handle), 2 x 50 lines: every line once,
#     in each writer's order, read through every node;
#  5. a 1 GiB copy() into the store and stream_copy_to_stream back, SHA-256
#     on both sides (the registry's too), peak memory under 8 MiB with
#     memory_limit=64M;
#  6. the wrapper given two nodes, the first stopped, then frozen
#     (SIGSTOP): reads, writes, mkdir and scandir go through the second,
#     each call within the timeout + a margin; given only the frozen node,
#     calls fail (false and a warning) as quickly; the node is thawed and
#     restarted whatever happens, and serves what was written meanwhile.
# php runs with -d error_reporting=-1 -d allow_url_fopen=0 (the wrapper
# must not need http://) -d display_errors=stderr -d memory_limit=64M.
# file_put_contents() with LOCK_EX (without FILE_APPEND) is refused by PHP
# itself for every path with "://" but file:// ("Exclusive locks may only
# be set for regular files", ext/standard/file.c), before any wrapper is
# called.  It is what Flysystem's default writeFlags and Laravel's
# FileStore::put do, so those checks stay, isolated from the rest, and say
# so when they fail.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for node_url storage_root php_tap);
use CSNode;
use File::Path qw(make_path remove_tree);
use Time::HiRes qw(time);

my $REPO = $ENV{CS_REPO} or die "CS_REPO is not set (run via scripts/test.sh)";
my $SCRIPT = "$REPO/t/php/realworld_test.php";
my @INI = ('-d', 'error_reporting=-1', '-d', 'allow_url_fopen=0',
           '-d', 'display_errors=stderr', '-d', 'memory_limit=64M');

my ($php) = grep { defined && -x } $ENV{PHP}, '/usr/bin/php',
    map { "$_/php" } split /:/, $ENV{PATH} // '';
unless (ok $php, 'php-cli is installed (scripts/deps.sh installs it)') {
    done_testing;
    exit;
}
my $mods = qx{"$php" -m 2>&1};
ok $mods =~ /^posix$/m && $mods =~ /^pcntl$/m, 'php has posix and pcntl';

my $t0 = time;
my ($A, $B) = map { CSNode->new($_, dav => 1)->start } qw(d55a d55b);
my $base = '/dav/' . unique_key('t55');
is req(MKCOL => $A->url . "$base/")->code, 201, 'MKCOL of the test collection';
my @AB = map { $_->url . $base } $A, $B;
my $n1 = node_url() . $base;            # the Apache::Test server, a third node
my $scratch = "$ENV{CS_STATE_DIR}/t55";
make_path($scratch);

# ---- 1, 2: Flysystem, WordPress --------------------------------------------
run_php('flysystem', 120, 'flysystem', @AB);
run_php('wordpress', 120, 'wordpress', @AB, "--scratch=$scratch");

# ---- 3: a Laravel file cache, 4 incrementers, a writer, 2 readers ----------
run_php('laravel cache', 200, 'cache', @AB, '--procs=4', '--incr=25', '--readers=2');

# ---- 4: two appenders; the logs are read through a, b and n1 ---------------
run_php('appenders', 150, 'append', @AB, $n1, '--lines=50');

# ---- 5: 1 GiB both ways ------------------------------------------------------
{
    my $work = unique_key('big');
    my $key = "$base/$work/big.bin";
    my $r = run_php('1 GiB copy', 180, 'bigcopy', $AB[0], '--mib=1024',
                    "--scratch=$scratch", "--work=$work", '--keep=1');
    ok $r->{seconds} < 100, sprintf '1 GiB both ways in %.0f s (under 100)', $r->{seconds};
    my ($sha) = map { /^source sha256: ([0-9a-f]{64})$/ ? $1 : () } @{ $r->{comments} };
    my $e = $A->entry($key);
    ok $sha && $e && $e->{exists} && ($e->{sha256} // '') eq $sha
       && ($e->{size} // 0) == 1024 * 1024 * 1024,
        'the registry holds the stored copy with the SHA-256 and size of the source'
        or diag explain { source => $sha, entry => $e };
    # Let the replication finish before the copy is deleted, so that no
    # transfer is cut when the nodes stop.
    ok wait_for(90, sub { (() = $A->live_holders($key)) >= 2 }),
        'the stored copy reached its second holder' if $e && $e->{exists};
    my $d = req(DELETE => $A->url . "$base/$work/");
    ok $d->code == 204 || $d->code == 404, 'DELETE of the big copy\'s collection';
    my @disk = map { $_->root . "/dav" . substr($key, 4) } $A, $B;
    push @disk, storage_root('n1') . "/dav" . substr($key, 4);
    ok wait_for(60, sub { !grep { -e } @disk }), 'no node keeps the 1 GiB file on disk';
    my @left = glob("$scratch/rw-big-*");
    ok !@left, 'no local file of the copy is left' or diag "@left";
}

# ---- 6: a node stopped, then frozen --------------------------------------
# Nodes of their own, without the node-local cache: a writer tells every
# node with a cache lease before it answers, and waits out the lease of
# one it cannot reach (README, "ClusterStorageLocalCache"): with c frozen
# the server itself would hold each write through d for seconds, and the
# wrapper's timeout would be testing that.  Peer timeout 1 s: d's
# replication towards c gives up quickly.
{
    my $nocache = sub { $_[0] .= "\nClusterStorageLocalCache Off\n" };
    my ($C, $D) = map { CSNode->new($_, dav => 1, timeout => 1, edit => $nocache)->start }
                  qw(d55c d55d);
    my @CD = map { $_->url . $base } $C, $D;
    my @fo = ('--timeout=3', '--connect-timeout=1', '--work=' . unique_key('fo'));
    run_php('failover', 60, 'failover-prepare', @CD, @fo);
    my $ok = eval {
        $C->stop;
        ok !$C->alive, 'node c is stopped';
        run_php('failover', 120, 'failover-degraded', @CD, @fo, '--tag=stopped');
        $C->start;
        $C->freeze;
        ok $C->alive, 'node c is frozen (SIGSTOP of its process group)';
        run_php('failover', 120, 'failover-degraded', @CD, @fo, '--tag=frozen');
        run_php('failover', 120, 'failover-unreachable', $CD[0], @fo);
        1;
    };
    ok $ok, 'the stopped and frozen phases ran to their end' or diag $@;
    # Whatever happened: thawed and running again.
    $C->thaw;
    $C->start unless $C->alive;
    ok wait_for(30, sub { my $s = $C->status; $s && grep { $_->{name} eq 'd55c' && $_->{state} eq 'up' } @{ $s->{nodes} } }),
        'node c is up again';
    run_php('failover', 60, 'failover-recovered', @CD, @fo, '--tags=stopped,frozen');
    $_->stop for $C, $D;
}

$_->stop for $A, $B;
remove_tree($scratch);
note sprintf 't/55 took %.0f s', time - $t0;
done_testing;

# Run t/php/realworld_test.php with ARGS (at most LIMIT seconds), its TAP
# as tests here (CSTest::php_tap).
sub run_php {
    my ($label, $limit, @args) = @_;
    return php_tap($label, $limit, $php, @INI, $SCRIPT, @args);
}
