# A writer that dies after its commit and before it answered (SPEC promise
# 11: an unfinished write never hides the last finished one).  The writer
# W commits v2 of a key, puts it in place, and is killed while it still
# waits to tell a frozen node to drop the key from its cache, so it never
# answers.  W was the only holder of v2; another node X holds v1, the last
# answered version.  X must answer 200 with v1 (marked unverified), not
# 503.  Once the write is answered (a later PUT), nobody serves an older
# version (promise 1).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for sql sql_str);
use CSNode;
use POSIX ();

# W keeps its writes to itself (replicas 1), so v2 has no other holder.
my $W = CSNode->new('u58w', replicas => 1)->start;
my $X = CSNode->new('u58a', replicas => 1)->start;
my $P = CSNode->new('u58p', replicas => 1)->start;
END { $P->thaw if $P }

my $key = '/files/' . unique_key('unanswered') . '.txt';
my $r = req(PUT => $W->url . $key, "version one\n");
is $r->code, 201, 'v1 stored on W';
my $etag1 = $r->header('ETag');
$r = req(GET => $X->url . $key);
is $r->code . ' ' . $r->content, "200 version one\n", 'X reads v1 (and keeps a copy)';
ok wait_for(10, sub { grep { $_ eq 'u58a' } $W->live_holders($key) }),
    'X is a holder of v1';
# P has read the key too: it is cached there, so W's next write must tell
# P before it answers.  W tells the nodes in name order: X (u58a) first,
# so X's cache forgets v1, then P, which is frozen.
is req(GET => $P->url . $key)->code, 200, 'P reads v1';

my $version = sub {
    my $v = sql('SELECT version FROM cs_files WHERE path = ' . sql_str($key));
    return length $v ? $v : 0;
};
is $version->(), 1, 'the registry has v1';

# P cannot answer: W's PUT of v2 commits, and then waits for P.
$P->freeze;
my $pid = fork // die "fork: $!";
if (!$pid) {
    my $res = req(PUT => $W->url . $key, "version two\n");
    POSIX::_exit($res->code =~ /^2/ ? 0 : 1);
}
ok wait_for(10, sub { $version->() == 2 }), 'v2 is committed';
ok $W->kill9, 'W killed before it answered';
waitpid $pid, 0;
isnt $? >> 8, 0, 'the client of that PUT got no success';
$P->thaw;
ok wait_for(30, sub {
        my $st = $X->status or return 0;
        grep { $_->{name} eq 'u58w' && $_->{state} eq 'down' }
            @{ $st->{nodes} };
    }), 'W counts as down';

# v2's only holder is gone; it was never answered.
$r = req(GET => $X->url . $key);
is $r->code, 200, 'GET on X: 200, not 503';
is $r->content, "version one\n", 'with v1, the last answered version';
is $r->header('X-ClusterStorage-Unverified'), 1, 'marked unverified';
is $r->header('X-ClusterStorage-Version'), 1, 'as version 1';
is $r->header('ETag'), $etag1, "with v1's ETag";
like do { local (@ARGV, $/) = $X->error_log; <> // '' },
    qr/CS120: \Q$key\E: v2 was never answered/, 'X says why (CS120)';

# An answered write is never hidden: a new PUT through X is v3, and from
# then on v1 is never served again, on any node.
$r = req(PUT => $X->url . $key, "version three\n");
is $r->code, 204, 'a PUT through X is answered';
is $r->header('X-ClusterStorage-Version'), 3, 'as v3';
for my $n ($X, $P) {
    my $g = req(GET => $n->url . $key);
    is $g->code . ' ' . $g->content, "200 version three\n",
        'then ' . $n->name . ' serves v3';
}

# The writer comes back with its v2 on disk: v3 stays the current one.
$W->start;
$r = req(GET => $W->url . $key);
is $r->code . ' ' . $r->content, "200 version three\n", 'W serves v3 too';

$_->stop for $W, $X, $P;
done_testing;
