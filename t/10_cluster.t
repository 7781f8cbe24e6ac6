# Several nodes: a PUT on one is served by every other with identical bytes,
# ETag and Last-Modified; replication reaches the replica count with no
# reads; updates and deletes are seen at once everywhere; a node that had to
# fetch answers Range and If-None-Match like any static file.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for node_url tmp_files file_sha256);
use CSNode;
use Digest::SHA qw(sha256_hex);

my $n2 = CSNode->new('n2', replicas => 2)->start;
my $n3 = CSNode->new('n3', replicas => 2)->start;
my @urls = (node_url(), $n2->url, $n3->url);

my $key = '/files/' . unique_key('cluster') . '.bin';
my $body = join '', map { chr(($_ * 7) % 256) } 1 .. 300_000;

my $r = req(PUT => $n2->url . $key, $body);
is $r->code, 201, 'PUT on n2 is 201';
my $v = $r->header('X-ClusterStorage-Version');

# Replication without any read: two live holders soon.
ok wait_for(10, sub { scalar(my @h = $n2->live_holders($key)) >= 2 }),
    'the PUT reaches ClusterStorageReplicas (2) holders without reads'
    or diag explain $n2->entry($key);

my (%etag, %lm);
for my $u (@urls) {
    my $g = req(GET => $u . $key);
    is $g->code, 200, "GET on $u is 200";
    is sha256_hex($g->content), sha256_hex($body), "same bytes on $u";
    is $g->header('X-ClusterStorage-Version'), $v, "same version on $u";
    $etag{ $g->header('ETag') }++;
    $lm{ $g->header('Last-Modified') }++;
}
is scalar(keys %etag), 1, 'one ETag on every node';
is scalar(keys %lm), 1, 'one Last-Modified on every node';

# A node that had to fetch answers conditional and range requests.
my $key2 = '/files/' . unique_key('range') . '.bin';
is req(PUT => $n2->url . $key2, $body)->code, 201, 'second key stored';
$r = req(GET => $n3->url . $key2, undef, Range => 'bytes=100-199');
is $r->code, 206, 'Range on a cold node is 206';
is $r->content, substr($body, 100, 100), 'with the right bytes';
my $etag2 = req(HEAD => $n3->url . $key2)->header('ETag');
$r = req(GET => $n3->url . $key2, undef, 'If-None-Match' => $etag2);
is $r->code, 304, 'If-None-Match on that node is 304';

# Update on n3: every node serves the new version at once.
my $body2 = "version two\n" x 1000;
$r = req(PUT => $n3->url . $key, $body2);
is $r->code, 204, 'update on n3 is 204';
my $v2 = $r->header('X-ClusterStorage-Version');
ok $v2 > $v, 'the version increased';
for my $u (@urls) {
    my $g = req(GET => $u . $key);
    is $g->code, 200, "GET on $u after the update";
    is $g->content, $body2, "no stale bytes on $u";
    is $g->header('X-ClusterStorage-Version'), $v2, "new version on $u";
}

# Delete on n1: nobody serves it any more.
is req(DELETE => node_url() . $key)->code, 204, 'DELETE on n1 is 204';
for my $u (@urls) {
    is req(GET => $u . $key)->code, 404, "GET on $u after the delete is 404";
}
# Holders drop their copies (delete propagation), not only on next read.
ok wait_for(10, sub { !-e $n2->root . $key && !-e $n3->root . $key }),
    'the holders dropped their copies';

# A long key (1,500 bytes, the limit is 2,048) replicates like any other:
# its queue job holds the key and its path below the root.
my $long = '/files/' . unique_key('long') . '/'
    . join('/', map { chr(97 + $_) x 200 } 0 .. 7) . '/end.txt';
ok length($long) > 1450, 'a key of ' . length($long) . ' bytes';
is req(PUT => $n2->url . $long, "long\n")->code, 201, 'PUT of the long key on n2';
ok wait_for(15, sub { scalar(my @h = $n2->live_holders($long)) >= 2 }),
    'the long key reached two holders';
is req(GET => $n3->url . $long)->content, "long\n", 'n3 serves the long key';
unlike do { local (@ARGV, $/) = $n2->error_log; <> } // '', qr/CS40[26]: .*long-/,
    'by its replication job, not by repair after a lost job (no CS402/CS406)';

is_deeply [tmp_files('n2'), tmp_files('n3')], [], 'no temp files left';

$n2->stop;
$n3->stop;
done_testing;
