# Joining (SPEC §1): a brand-new node starts empty (no initial sync) and
# serves every key of the cluster on demand with the right bytes; later
# requests are local hits.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for node_url tmp_files);
use CSNode;
use Digest::SHA qw(sha256_hex);

my $E = CSNode->new('n15e', replicas => 1);
$E->start;

# Five keys on the existing nodes (n1 and E), of assorted sizes and depths.
my $u = unique_key('join');
my @keys = (
    ["/files/$u-empty.txt",            '',                           node_url()],
    ["/files/$u-one.txt",              'x',                          $E->url],
    ["/files/$u/a/b/c/deep.bin",       join('', map { chr } 0 .. 255) x 300,
                                                                     node_url()],
    ["/files/$u-big.bin",              join('', map { chr(($_ * 7919) % 256) }
                                                1 .. 1_500_000),     $E->url],
    ["/files/$u/name with spaces.txt", "spaces\n" x 1000,            node_url()],
);
my %ver;
for my $k (@keys) {
    my ($key, $body, $base) = @$k;
    (my $path = $key) =~ s/ /%20/g;
    my $r = req(PUT => $base . $path, $body);
    is $r->code, 201, "PUT $key on $base";
    $ver{$key} = $r->header('X-ClusterStorage-Version');
}

my $N = CSNode->new('n15n', replicas => 1);
$N->start;
is_deeply [$N->files], [], 'the new node starts with no files (no initial sync)';

for my $k (@keys) {
    my ($key, $body) = @$k;
    (my $path = $key) =~ s/ /%20/g;
    my $r = req(GET => $N->url . $path);
    is $r->code, 200, "GET $key on the new node";
    is length($r->content), length($body), '... right length';
    is sha256_hex($r->content), sha256_hex($body), '... right bytes';
    is $r->header('X-ClusterStorage-Version'), $ver{$key}, '... right version';
}
is $N->counter('peer_fetches'), scalar(@keys), 'each key was fetched once';
is scalar(my @f = $N->files), scalar(@keys), 'and is now held locally';

my $hits0 = $N->counter('hits');
for my $k (@keys) {
    (my $path = $k->[0]) =~ s/ /%20/g;
    is sha256_hex(req(GET => $N->url . $path)->content), sha256_hex($k->[1]),
        "second GET $k->[0]";
}
is $N->counter('peer_fetches'), scalar(@keys), 'no fetch the second time';
is $N->counter('hits') - $hits0, scalar(@keys), 'all local hits';
is_deeply [tmp_files('n15n')], [], 'no temp files left';

done_testing;
