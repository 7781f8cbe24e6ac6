package CSNode;
# Extra cluster nodes for multi-node tests: each node is its own httpd
# process (config from t/lib/node.conf.tmpl) with its own root, name and
# port, so a test can stop it, kill -9 it and start it again.  The
# Apache::Test server is node n1; these are n2, n3, ...
use strict;
use warnings;

use File::Path qw(make_path);
use IO::Socket::INET ();
use JSON::PP ();
use Time::HiRes qw(time sleep);
use CSTest qw(req wait_for);

my $REPO = $ENV{CS_REPO} or die "CS_REPO is not set (run via scripts/test.sh)";
# The httpd binary (scripts/httpd-asan for the AddressSanitizer pass).
my $HTTPD = $ENV{CS_HTTPD} || '/usr/sbin/apache2';

sub free_port {
    for (1 .. 200) {
        my $port = 20000 + int(rand(12000));
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Listen => 1,
                                      ReuseAddr => 1) or next;
        close $s;
        return $port;
    }
    die "no free port";
}

# CSNode->new(NAME, replicas => N, timeout => SECONDS, dav => PROVIDER,
#             db_port => PORT, mc_port => PORT, admin => 1)
# admin: /cluster-admin is the clusterstorage-admin handler behind Basic
# authentication, user admin with the password $CSNode::ADMIN_PASSWORD
# (CSNode::admin_auth() gives the header, $node->admin(QUERY) POSTs).
# dav: the node also serves a WebDAV space at /dav (ROOT/dav), see
# dav_conf; without it the node has none.
sub new {
    my ($class, $name, %opt) = @_;
    my $dir = "$ENV{CS_STATE_DIR}/nodes/$name";
    my $self = bless {
        name     => $name,
        dir      => $dir,
        root     => "$REPO/t/storage/$name",
        port     => free_port(),
        replicas => $opt{replicas} || 2,
        timeout  => $opt{timeout} || 3,
        root_override => $opt{root},
        edit     => $opt{edit},       # sub { $_[0] is the config text }
        env      => $opt{env} || {},  # environment of its httpd
        dav      => $opt{dav},
        # Another database or memcached than the suite's (t/60's Galera
        # members; a port where nothing listens: memcached down).
        db_port  => $opt{db_port} || $ENV{CS_DB_PORT},
        mc_port  => $opt{mc_port} || $ENV{CS_MC_PORT},
        admin    => $opt{admin},
    }, $class;
    $self->{root} = $opt{root} if $opt{root};
    make_path($dir, "$self->{root}/files", "$self->{root}/htdocs",
              $self->{dav} ? "$self->{root}/dav" : ());
    $self->write_conf;
    return $self;
}

sub write_conf {
    my ($self) = @_;
    open my $in, '<', "$REPO/t/lib/node.conf.tmpl" or die $!;
    local $/;
    my $conf = <$in>;
    my %v = (
        DIR => $self->{dir}, ROOT => $self->{root}, NAME => $self->{name},
        PORT => $self->{port}, REPLICAS => $self->{replicas},
        TIMEOUT => $self->{timeout}, MODULES => $ENV{CS_APACHE_MODULES},
        SO => "$REPO/.libs/mod_clusterstorage.so",
        MCPORT => $self->{mc_port}, DBPORT => $self->{db_port},
        DBUSER => $ENV{CS_DB_USER}, DBPASS => $ENV{CS_DB_PASS},
        DBNAME => $ENV{CS_DB_NAME},
    );
    $conf .= $self->dav_conf if $self->{dav};
    $conf .= $self->admin_conf if $self->{admin};
    $conf =~ s/@(\w+)@/exists $v{$1} ? $v{$1} : die "no value for $1"/ge;
    $self->{edit}->($conf) if $self->{edit};
    open my $out, '>', "$self->{dir}/httpd.conf" or die $!;
    print $out $conf;
    close $out;
}

# The WebDAV space of a node made with dav => PROVIDER, appended to its
# config (before the edit hook, which sees it):
#   1 or 'clusterstorage': `DAV clusterstorage` in a ClusterStorage On +
#       ClusterStorageWrite On location (SPEC section 8);
#   'filesystem': mod_dav_fs (`DAV On`, a DAVLockDB in the node's
#       directory) without ClusterStorage, whose handler would otherwise
#       take the location's GET, PUT and DELETE itself.  For trying a
#       harness on a DAV space before the cluster's provider exists; such
#       nodes share nothing, so only one of them is meaningful behind a
#       front.
# UseCanonicalName Off: behind a front (t/lib/CSFront.pm, which preserves
# the client's Host) the URLs a node builds, such as the Location of a
# 201, name the front.
sub dav_conf {
    my ($self) = @_;
    my $p = $self->{dav};
    my $conf = <<'EOF';

# WebDAV space (CSNode dav => ...).
LoadModule dav_module @MODULES@/mod_dav.so
UseCanonicalName Off
Alias /dav @ROOT@/dav
EOF
    if ($p eq '1' || $p eq 'clusterstorage') {
        $conf .= <<'EOF';
<Location /dav>
    Require all granted
    ClusterStorage On
    ClusterStorageWrite On
    DAV clusterstorage
</Location>
EOF
    } elsif ($p eq 'filesystem') {
        $conf .= <<'EOF';
LoadModule dav_fs_module @MODULES@/mod_dav_fs.so
DAVLockDB @DIR@/davlock
<Location /dav>
    Require all granted
    DAV On
</Location>
EOF
    } else {
        die "CSNode $self->{name}: unknown DAV provider '$p'";
    }
    return $conf;
}

our $ADMIN_PASSWORD = 'admin-secret-for-tests';
sub admin_auth {
    require MIME::Base64;
    return (Authorization => 'Basic '
            . MIME::Base64::encode_base64("admin:$ADMIN_PASSWORD", ''));
}
sub admin_conf {
    my ($self) = @_;
    system('sh', '-c', 'htpasswd -cbB "$0" admin "$1" 2>/dev/null',
           "$self->{dir}/htpasswd", $ADMIN_PASSWORD) == 0
        or die 'htpasswd failed';
    return <<'CONF';

# The operator's commands (CSNode admin => 1).
LoadModule auth_basic_module @MODULES@/mod_auth_basic.so
LoadModule authn_core_module @MODULES@/mod_authn_core.so
LoadModule authn_file_module @MODULES@/mod_authn_file.so
LoadModule authz_user_module @MODULES@/mod_authz_user.so
<Location /cluster-admin>
    SetHandler clusterstorage-admin
    AuthType Basic
    AuthName "clusterstorage admin"
    AuthUserFile @DIR@/htpasswd
    Require valid-user
</Location>
CONF
}
# admin(QUERY, HEADER => VALUE ...): POST /cluster-admin?QUERY, with the
# admin's credentials unless other headers are given.
sub admin {
    my ($self, $q, @h) = @_;
    @h = admin_auth() unless @h;
    return req(POST => $self->url . "/cluster-admin?$q", '', @h);
}

sub name { $_[0]{name} }
sub root { $_[0]{root} }
sub url  { "http://127.0.0.1:$_[0]{port}" }
sub error_log { "$_[0]{dir}/error_log" }

sub pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/httpd.pid" or return undef;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid && $pid =~ /^\d+$/ ? $pid : undef;
}

# The node's httpd children (the processes whose parent is its httpd
# parent), from /proc, lowest pid first.
sub children {
    my ($self) = @_;
    my $ppid = $self->pid or return ();
    my @kids;
    opendir my $dh, '/proc' or die "/proc: $!";
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $st = <$fh> // next;
        # pid (comm) state ppid ...: comm may hold spaces, so from the ')'
        push @kids, $p if $st =~ /\)\s+\S+\s+(\d+)/ && $1 == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

sub alive {
    my ($self) = @_;
    my $pid = $self->pid or return 0;
    return kill 0, $pid;
}

# Every node this test file started is stopped when the file ends, also
# when it dies half-way (not by the file's forked children).
my $MAIN_PID = $$;
my @STARTED;
END {
    local $?;
    if ($$ == $MAIN_PID) { $_->alive && $_->stop for @STARTED }
}
sub remember { my ($self) = @_; push @STARTED, $self unless grep { $_ == $self } @STARTED }

# Start and wait until it answers and has recorded a heartbeat.
sub start {
    my ($self) = @_;
    $self->remember;
    local %ENV = %ENV;
    for my $k (keys %{ $self->{env} }) {
        # LD_PRELOAD adds to what the suite preloads (the ASan runtime).
        $ENV{$k} = $k eq 'LD_PRELOAD' && $ENV{$k}
                   ? "$ENV{$k} $self->{env}{$k}" : $self->{env}{$k};
    }
    # Bounded: a start that hangs fails the test instead of the suite.
    my $out = qx{timeout 60 $HTTPD -f "$self->{dir}/httpd.conf" -k start 2>&1};
    die "node $self->{name} did not start: $out" if $?;
    wait_for(30, sub {
        my $r = req(GET => $self->url . '/cluster-status?format=json');
        return 0 unless $r->code == 200;
        my $j = eval { JSON::PP::decode_json($r->content) } or return 0;
        return grep { $_->{name} eq $self->{name} && $_->{state} eq 'up' }
               @{ $j->{nodes} };
    }) or die "node $self->{name} did not come up: " . $self->log_tail;
    $self->register_pid;
    return $self;
}

# Remember pids so the runner can kill leftovers (CSTest::stop_all_nodes).
sub register_pid {
    my ($self) = @_;
    my $pid = $self->pid or return;
    open my $fh, '>', "$ENV{CS_STATE_DIR}/nodes/$self->{name}.pid" or return;
    print $fh $pid;
}

# Try to start; returns (exit status, everything httpd said on the console
# and in its error log).  For tests of start-up errors.
sub try_start {
    my ($self) = @_;
    truncate $self->error_log, 0 if -e $self->error_log;
    $self->remember;
    # Bounded: a start that hangs fails the test instead of the suite.
    my $out = qx{timeout 60 $HTTPD -f "$self->{dir}/httpd.conf" -k start 2>&1};
    my $rc = $? >> 8;
    if ($rc == 0) {
        # It started after all: wait for the pid file, then stop it.
        wait_for(10, sub { $self->pid });
        $self->register_pid;
    }
    my $log = '';
    if (open my $fh, '<', $self->error_log) {
        local $/;
        $log = <$fh> // '';
    }
    return ($rc, $out . $log);
}

sub stop {
    my ($self) = @_;
    my $pid = $self->pid or return;
    $self->thaw if $self->{frozen};
    system($HTTPD, '-f', "$self->{dir}/httpd.conf", '-k', 'stop');
    wait_for(30, sub { !kill 0, $pid }) or kill 'KILL', -$pid;
    unlink "$self->{dir}/httpd.pid";
}

# SIGKILL the whole process group (parent and children) at once; true once
# the parent is gone.
sub kill9 {
    my ($self) = @_;
    my $pid = $self->pid or return 0;
    kill 'KILL', -$pid;
    my $gone = wait_for(10, sub { !kill 0, $pid });
    unlink "$self->{dir}/httpd.pid" if $gone;
    return $gone;
}

# SIGSTOP / SIGCONT the whole process group: a hung node that still
# accepts connections (the kernel completes them) but never answers.
sub freeze {
    my ($self) = @_;
    my $pid = $self->pid or return;
    kill 'STOP', -$pid;
    $self->{frozen} = 1;
}

sub thaw {
    my ($self) = @_;
    my $pid = $self->pid or return;
    kill 'CONT', -$pid;
    $self->{frozen} = 0;
}

sub log_tail {
    my ($self) = @_;
    open my $fh, '<', $self->error_log or return '';
    my @l = <$fh>;
    my $n = @l > 20 ? 20 : scalar @l;
    return join '', @l[ -$n .. -1 ];
}

sub status {
    my ($self) = @_;
    my $r = req(GET => $self->url . '/cluster-status?format=json');
    return undef unless $r->code == 200;
    return eval { JSON::PP::decode_json($r->content) };
}

sub counter {
    my ($self, $name) = @_;
    my $s = $self->status or return undef;
    return $s->{counters}{$name};
}

# The registry entry of a key as a node reports it (?path=).
sub entry {
    my ($self, $key) = @_;
    my $esc = $key;
    $esc =~ s/([^A-Za-z0-9\/._-])/sprintf('%%%02X', ord $1)/ge;
    my $r = req(GET => $self->url . "/cluster-status?path=$esc");
    return undef unless $r->code == 200;
    return eval { JSON::PP::decode_json($r->content) };
}

sub live_holders {
    my ($self, $key) = @_;
    my $e = $self->entry($key) or return ();
    return sort map { $_->{node} } grep { $_->{alive} } @{ $e->{holders} };
}

# Regular files under this node's root (outside .clusterstorage), relative.
sub files { CSTest::local_files($_[0]{root}) }

# Job files of this node's replication queue (.clusterstorage/queue).
sub queue_jobs {
    my ($self) = @_;
    opendir my $dh, "$self->{root}/.clusterstorage/queue"
        or die "queue_jobs: no queue directory under $self->{root}: $!";
    my @f = sort grep { !/^\./ } readdir $dh;
    closedir $dh;
    return @f;
}

sub DESTROY {
    my ($self) = @_;
    $self->kill9 if $self->{kill_on_destroy} && $self->alive;
}

1;
