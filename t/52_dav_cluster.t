# The WebDAV space across nodes (SPEC section 8): what litmus cannot see
# because it talks to one URL.  Three nodes with `DAV clusterstorage`;
# each step writes through one node and checks through the others, also
# one that was down while it happened:
#   - a MOVE and a collection DELETE while a node is stopped: once back,
#     it serves the new names and none of the old ones;
#   - a collection MOVE renames each holder's copies, one stopped during
#     it included: no byte fetched or pushed, holders and dead properties
#     kept; one the registry refuses half-way moves nothing;
#   - a MOVE racing a PUT of its source: the PUT's bytes are not lost;
#   - a lock taken through one node is enforced by the others, survives
#     the restart of the node that granted it, and ends at its timeout;
#   - concurrent appends (PATCH, X-Update-Range: append) through all three
#     nodes: every line lands exactly once, the same on every node;
#   - partial PUTs (Content-Range): bad ones change nothing;
#   - a COPY or an append made on a node whose copy was damaged on disk
#     builds on the registry's bytes (fetched again), not on the damage.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for lock_round);
use CSNode;
use Digest::SHA qw(sha256_hex);

my @nodes = map { CSNode->new($_, dav => 1)->start } qw(d52a d52b d52c);
my ($A, $B, $C) = @nodes;
my $base = '/dav/' . unique_key('t52');
is req(MKCOL => $A->url . "$base/")->code, 201, 'MKCOL of the test collection';

sub put { my ($n, $p, $body, @h) = @_; return req(PUT => $n->url . $p, $body, @h) }
sub get { my ($n, $p) = @_; return req(GET => $n->url . $p) }

# The hrefs of a Depth 1 PROPFIND of collection p through node n.
sub listing {
    my ($n, $p) = @_;
    my $r = req(PROPFIND => $n->url . "$p/", undef, Depth => 1);
    return undef unless $r->code == 207;
    my @h = $r->content =~ m{<D:href>([^<]*)</D:href>}g;
    return [ sort grep { $_ ne "$p/" } @h ];
}

# ---- a MOVE while a node is down ---------------------------------------
{
    is put($A, "$base/m1.txt", 'moved bytes')->code, 201, 'PUT m1.txt';
    # Every node has seen it (C may have a copy or a cache entry).
    is get($_, "$base/m1.txt")->content, 'moved bytes',
        'm1.txt before the MOVE on ' . $_->name for @nodes;
    $C->stop;
    my $r = req(MOVE => $A->url . "$base/m1.txt", undef,
                Destination => $A->url . "$base/m2.txt");
    is $r->code, 201, 'MOVE m1.txt -> m2.txt with node c stopped'
        or diag $r->as_string;
    $C->start;
    for my $n (@nodes) {
        is get($n, "$base/m1.txt")->code, 404,
            'the old name is gone on ' . $n->name;
        is get($n, "$base/m2.txt")->content, 'moved bytes',
            'the new name serves the bytes on ' . $n->name;
    }
}

# ---- a collection MOVE: one transaction, no file bytes between nodes -----
# The holders of each file before the MOVE hold it at the new name after,
# on their own disks; reading every moved file through its holders (one
# of them stopped during the MOVE and started after it) fetches nothing
# and serves nothing to a peer.
{
    my @rel = ((map { "f$_.txt" } 1 .. 12), 'sub/deep.txt');
    is req(MKCOL => $A->url . "$base/$_/")->code, 201, "MKCOL $_/"
        for 'tree', 'tree/sub';
    for my $f (@rel) {
        is put($A, "$base/tree/$f", "bytes of $f\n" x 50)->code, 201,
            "PUT tree/$f";
    }
    my %holders;
    for my $f (@rel) {
        ok wait_for(15, sub { (() = $A->live_holders("$base/tree/$f")) >= 2 }),
            "tree/$f has two holders";
        $holders{$f} = [ $A->live_holders("$base/tree/$f") ];
    }
    my $props = req(PROPPATCH => $A->url . "$base/tree/f1.txt",
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:t52">'
        . '<D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set>'
        . '</D:propertyupdate>', 'Content-Type' => 'application/xml');
    is $props->code, 207, 'a dead property on tree/f1.txt';
    $C->stop;
    my %before = map { $_->name => { served => $_->counter('peer_served'),
                                     received => $_->counter('replicas_received'),
                                     fetched => $_->counter('fetch_bytes') } }
                 $A, $B;
    my $r = req(MOVE => $B->url . "$base/tree/", undef,
                Destination => $B->url . "$base/moved/");
    is $r->code, 201, 'MOVE tree/ -> moved/ through b, c stopped'
        or diag $r->as_string;
    # memcached got both paths' new entries before the answer (pipelined):
    # a tombstone ("CS1 V 0 - T 1 MAC") for each old path, a live entry
    # for each new one.
    my $mc = sub { CSTest::mc_get(CSTest::mc_key("$base/$_[0]")) // '' };
    is scalar(grep { $mc->("tree/$_") =~ /^CS1 \d+ 0 - \d+ 1 / } @rel),
        scalar @rel, 'memcached holds a tombstone for every old path';
    is scalar(grep { $mc->("moved/$_") =~ /^CS1 \d+ \d+ [0-9a-f]{64} \d+ 0 / }
                   @rel),
        scalar @rel, 'and a live entry for every new path';
    $C->start;
    for my $n (@nodes) {
        for my $f (@rel) {
            next unless grep { $_ eq $n->name } @{ $holders{$f} };
            my $g = get($n, "$base/moved/$f");
            is $g->code . ' ' . ($g->content eq "bytes of $f\n" x 50 ? 'same' : 'other'),
                '200 same', "moved/$f read through its holder " . $n->name;
            ok -f $n->root . "/dav" . substr($base, 4) . "/moved/$f"
                && !-e $n->root . "/dav" . substr($base, 4) . "/tree/$f",
                "moved/$f renamed on the disk of " . $n->name;
        }
        is get($n, "$base/tree/$_")->code, 404,
            "tree/$_ gone on " . $n->name for @rel;
        is req(PROPFIND => $n->url . "$base/tree/", undef, Depth => 0)->code,
            404, 'tree/ gone on ' . $n->name;
        like req(PROPFIND => $n->url . "$base/moved/f1.txt", undef,
                 Depth => 0)->content, qr{<[^>]*colour[^>]*>blue<},
            'the dead property moved with the file on ' . $n->name;
    }
    for my $f (@rel) {
        is_deeply [ $A->live_holders("$base/moved/$f") ], $holders{$f},
            "moved/$f has the holders tree/$f had";
    }
    for my $n ($A, $B) {
        my $b = $before{ $n->name };
        is $n->counter('peer_served') - $b->{served}, 0,
            'no copy served to a peer by ' . $n->name;
        is $n->counter('replicas_received') - $b->{received}, 0,
            'no replica received by ' . $n->name;
        is $n->counter('fetch_bytes') - $b->{fetched}, 0,
            'no byte fetched by ' . $n->name;
    }
    is $C->counter('fetch_bytes'), 0,
        'no byte fetched by c, which was stopped during the MOVE';
}

# ---- a MOVE the registry refuses half-way changes nothing ---------------
# A trigger makes the insert of one destination row fail: the MOVE is one
# transaction, so none of its files moved (file by file, the ones before
# it would have).
{
    is req(MKCOL => $A->url . "$base/atom/")->code, 201, 'MKCOL atom/';
    my @rel = qw(a.txt boom.txt z.txt);
    is put($A, "$base/atom/$_", "atom $_")->code, 201, "PUT atom/$_" for @rel;
    # (One statement without a ';': a NULL key is refused, error 1048.)
    CSTest::sql("CREATE TRIGGER cs_t52_boom BEFORE INSERT ON cs_files"
        . " FOR EACH ROW SET NEW.path = IF(NEW.path LIKE '%/atom2/boom.txt',"
        . " NULL, NEW.path)");
    my $r = req(MOVE => $A->url . "$base/atom/", undef,
                Destination => $A->url . "$base/atom2/");
    CSTest::sql("DROP TRIGGER cs_t52_boom");
    is $r->code, 503, 'the refused MOVE answers 503';
    for my $n (@nodes) {
        is get($n, "$base/atom/$_")->content, "atom $_",
            "atom/$_ still at the source on " . $n->name for @rel;
        is get($n, "$base/atom2/$_")->code, 404,
            "no atom2/$_ on " . $n->name for @rel;
    }
    is req(MOVE => $A->url . "$base/atom/", undef,
           Destination => $A->url . "$base/atom2/")->code, 201,
        'the same MOVE goes through once the registry takes it';
    is get($C, "$base/atom2/$_")->content, "atom $_", "atom2/$_ through c"
        for @rel;
}

# ---- a collection DELETE while a node is down ----------------------------
{
    is req(MKCOL => $A->url . "$base/gone/")->code, 201, 'MKCOL gone/';
    is req(MKCOL => $A->url . "$base/gone/sub/")->code, 201, 'MKCOL gone/sub/';
    my @keys = map { "$base/gone/f$_.txt" } 1 .. 4;
    push @keys, "$base/gone/sub/deep.txt";
    is put($A, $_, "bytes of $_")->code, 201, "PUT $_" for @keys;
    is get($B, $_)->code, 200, "B reads $_ before" for @keys;
    $B->stop;
    my $r = req(DELETE => $C->url . "$base/gone/");
    is $r->code, 204, 'DELETE of the collection through c, b stopped'
        or diag $r->as_string;
    $B->start;
    for my $n (@nodes) {
        is get($n, $_)->code, 404, "$_ gone on " . $n->name for @keys;
        is req(PROPFIND => $n->url . "$base/gone/", undef, Depth => 0)->code,
            404, 'the collection is gone on ' . $n->name;
    }
    is_deeply listing($B, $base),
        [ "$base/atom2/", "$base/m2.txt", "$base/moved/" ],
        'the listing of the parent on b has only what is left';
}

# ---- a MOVE racing a PUT of its source -----------------------------------
{
    my $src = "$base/race-src.txt";
    my $dst = "$base/race-dst.txt";
    my $lost = 0;
    for my $round (1 .. 6) {
        ok put($A, $src, "first $round")->is_success, "race $round: PUT source";
        req(DELETE => $A->url . $dst);
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $r = put($B, $src, "second $round");
            exit($r->is_success ? 0 : 1);
        }
        my $m = req(MOVE => $C->url . $src, undef,
                    Destination => $C->url . $dst, Overwrite => 'T');
        waitpid $pid, 0;
        my $put_ok = $? == 0;
        ok $m->code == 201 || $m->code == 204, "race $round: MOVE answered"
            or diag $m->as_string;
        # Whatever happened, the second PUT's bytes are somewhere, and
        # every node agrees on what is where.
        my %seen;
        for my $n (@nodes) {
            $seen{ join '|', map { my $r = get($n, $_);
                                   $r->code == 200 ? $r->content : $r->code }
                             ($src, $dst) }++;
        }
        is scalar(keys %seen), 1, "race $round: every node serves the same"
            or diag explain \%seen;
        my ($state) = keys %seen;
        $lost++ if $put_ok && $state !~ /second $round/;
    }
    is $lost, 0, 'no acknowledged PUT of a source was lost to a racing MOVE';
}

# ---- locks across nodes --------------------------------------------------
my $lockbody = '<?xml version="1.0" encoding="utf-8"?>'
    . '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    . '<D:locktype><D:write/></D:locktype><D:owner>t52</D:owner></D:lockinfo>';
{
    my $k = "$base/locked.txt";
    is put($A, $k, 'v1')->code, 201, 'PUT locked.txt';
    my $r = req(LOCK => $A->url . $k, $lockbody, Timeout => 'Second-3600',
                'Content-Type' => 'application/xml');
    is $r->code, 200, 'LOCK through a' or diag $r->as_string;
    my ($token) = ($r->header('Lock-Token') // '') =~ /<([^>]+)>/;
    ok $token, "a lock token ($token)";
    is put($B, $k, 'v2')->code, 423, 'b refuses a PUT without the token';
    is req(DELETE => $C->url . $k)->code, 423,
        'c refuses a DELETE without the token';
    is req(PATCH => $C->url . $k, 'x',
           'Content-Type' => 'application/x-sabredav-partialupdate',
           'X-Update-Range' => 'append')->code, 423,
        'c refuses a PATCH without the token';
    is put($B, $k, 'v2', If => "(<$token>)")->code, 204,
        'b takes a PUT with the token';
    $A->stop;
    $A->start;
    is put($C, $k, 'v3')->code, 423,
        'the lock survives the restart of the node that granted it';
    is req(UNLOCK => $C->url . $k, undef, 'Lock-Token' => "<$token>")->code,
        204, 'UNLOCK through c';
    is put($B, $k, 'v3')->code, 204, 'after UNLOCK anyone may write';
    is get($A, $k)->content, 'v3', 'and a serves that write';

    $r = req(LOCK => $B->url . $k, $lockbody, Timeout => 'Second-2',
             'Content-Type' => 'application/xml');
    is $r->code, 200, 'a short LOCK (2 s) through b' or diag $r->as_string;
    is put($C, $k, 'v4')->code, 423, 'enforced by c while it runs';
    ok wait_for(15, sub { put($C, $k, 'v4')->code == 204 }),
        'the lock ends at its timeout (a PUT through c goes through)';
}

# Exclusive LOCKs of one file sent at once through the three nodes (each
# round's children are released together): exactly one is granted.
{
    my $k = "$base/contended.txt";
    is put($A, $k, 'x')->code, 201, 'PUT contended.txt';
    my @wins;
    for my $round (1 .. 8) {
        my @got = lock_round($k, map { $nodes[$_ % 3]->url } 0 .. 5);
        my @ok = grep { $_->[0] == 200 } @got;
        push @wins, scalar @ok;
        diag 'round ' . $round . ': ' . join ', ', map { $_->[0] } @got
            unless @ok == 1 && !grep { $_->[0] != 200 && $_->[0] != 423 } @got;
        req(UNLOCK => $A->url . $k, undef, 'Lock-Token' => "<$_->[1]>")
            for @ok;
    }
    is_deeply \@wins, [(1) x 8],
        '8 rounds of 6 concurrent exclusive LOCKs through 3 nodes: one granted each time';
}

# ---- concurrent appends through three nodes ------------------------------
{
    my $k = "$base/log.txt";
    is put($A, $k, '')->code, 201, 'PUT an empty log';
    my $per = 25;
    my @pids;
    for my $i (0 .. 2) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $bad = 0;
            for my $j (1 .. $per) {
                my $r = req(PATCH => $nodes[$i]->url . $k,
                            "node$i line$j\n",
                            'Content-Type' =>
                                'application/x-sabredav-partialupdate',
                            'X-Update-Range' => 'append');
                $bad++ unless $r->code == 204;
            }
            exit($bad ? 1 : 0);
        }
        push @pids, $pid;
    }
    my $failed = 0;
    for (@pids) { waitpid $_, 0; $failed++ if $? }
    is $failed, 0, 'every append was answered 204';
    my %want = map { my $i = $_; map { ("node$i line$_" => 1) } 1 .. $per }
               0 .. 2;
    for my $n (@nodes) {
        my @lines = split /\n/, get($n, $k)->content;
        my %count;
        $count{$_}++ for @lines;
        is scalar(@lines), 3 * $per, 'all ' . 3 * $per . ' lines on ' . $n->name;
        is_deeply [ sort grep { $count{$_} == 1 } keys %count ],
            [ sort keys %want ], 'each line exactly once on ' . $n->name;
    }
}

# ---- partial PUT: good and bad ranges ---------------------------------------
{
    my $k = "$base/range.txt";
    is put($A, $k, 'hello world')->code, 201, 'PUT range.txt';
    is put($B, $k, 'HELLO', 'Content-Range' => 'bytes 0-4/*')->code, 204,
        'Content-Range PUT of bytes 0-4 through b';
    is get($C, $k)->content, 'HELLO world', 'c serves the patched file';
    my $etag = get($A, $k)->header('ETag');
    is put($B, $k, 'XX', 'Content-Range' => 'bytes 0-4/*')->code, 400,
        'a body shorter than its range: 400';
    is put($B, $k, 'XX', 'Content-Range' => 'bytes 50-51/*')->code, 416,
        'a range past the end: 416';
    is put($B, "$base/none.txt", 'XX', 'Content-Range' => 'bytes 0-1/*')->code,
        404, 'a range of a missing key: 404';
    is get($_, $k)->header('ETag'), $etag,
        'the refused ranges changed nothing on ' . $_->name for @nodes;
    is get($A, "$base/none.txt")->code, 404, 'and created nothing';
}

# ---- COPY and append from a copy damaged on disk ----------------------------
{
    my $body = join '', map { chr(($_ * 11 + 5) % 256) } 1 .. 32768;
    my $k = "$base/damaged.bin";
    is put($A, $k, $body)->code, 201, 'PUT damaged.bin';
    ok wait_for(20, sub { my @h = $A->live_holders($k); @h >= 2 }),
        'held by two nodes';
    my @holders = grep { -e $_->root . $k } @nodes;
    # Damage one holder's copy in place (same size) and act through it.
    my $bad = $holders[0];
    my $damage = sub {
        open my $fh, '+<:raw', $bad->root . $k or die $!;
        seek $fh, 1000, 0; print $fh 'X' x 16; close $fh;
    };
    $damage->();
    my $r = req(COPY => $bad->url . $k, undef,
                Destination => $bad->url . "$base/damaged-copy.bin");
    is $r->code, 201, 'COPY through the node with the damaged copy'
        or diag $r->as_string;
    is sha256_hex(get($_, "$base/damaged-copy.bin")->content), sha256_hex($body),
        'the copy has the registry\'s bytes on ' . $_->name for @nodes;
    $damage->() if -e $bad->root . $k;
    $r = req(PATCH => $bad->url . $k, "tail\n",
             'Content-Type' => 'application/x-sabredav-partialupdate',
             'X-Update-Range' => 'append');
    is $r->code, 204, 'append through the node with the damaged copy';
    is sha256_hex(get($_, $k)->content), sha256_hex("$body" . "tail\n"),
        'the appended version is built on the registry\'s bytes on '
        . $_->name for @nodes;
}

$_->stop for @nodes;
done_testing;
